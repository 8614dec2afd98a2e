import type { PubSub } from "type-graphql";
import type { EventBus } from "../events/event-bus";
import { isEventTopic, type EventTopic } from "../events/topics";

/**
 * type-graphql's PubSub over the domain's event bus: a `@Subscription({ topics, topicId })` listens
 * to the bus's topic (routed by `topicId`). Services publish through the bus itself; nothing in the
 * schema publishes, but the port forwards it for completeness.
 */
export function graphqlPubSub(bus: EventBus): PubSub {
  const topicOf = (name: string) => {
    if (!isEventTopic(name)) throw new Error(`Unknown event topic "${name}" in a @Subscription`);
    return name;
  };
  // type-graphql hands topics and ids over untyped; the bus checks nothing more at run time than the topic.
  type Untyped = { publish(topic: EventTopic, ...args: unknown[]): void; subscribe(topic: EventTopic, ...route: unknown[]): AsyncIterable<unknown> };
  const untyped = bus as unknown as Untyped;
  return {
    publish: (topic, ...args) => untyped.publish(topicOf(topic), ...args),
    subscribe: (topic, id) => (id === undefined ? untyped.subscribe(topicOf(topic)) : untyped.subscribe(topicOf(topic), id)),
  };
}

/** For building the schema without events (printing the SDL): subscriptions stay typed and end at once. */
export const noEvents: PubSub = {
  publish() {},
  subscribe: () => ({ [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }) }),
};
