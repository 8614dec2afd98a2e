import { setMaxListeners } from "node:events";
import { createPubSub, type PubSub } from "@graphql-yoga/subscription";
import { createRedisEventTarget } from "@graphql-yoga/redis-event-target";
import { Redis } from "ioredis";
import type { EventBus, EventBusHandle } from "./event-bus";
import type { EventMap, EventTopic } from "./topics";

/**
 * Both adapters deliver through @graphql-yoga/subscription's pub/sub over an event target (a
 * process-local EventTarget, or Redis channels named `TOPIC` / `TOPIC:id`); only the EventBus port
 * leaves this module.
 */
function busOver(pubSub: PubSub<EventMap>): EventBus {
  // yoga types `subscribe`'s arguments by a conditional type that a generic topic cannot narrow.
  type Subscribe = (topic: EventTopic, id?: unknown) => AsyncIterableIterator<never>;
  return {
    publish: (topic, ...args) => pubSub.publish(topic, ...args),
    subscribe: (topic, ...route) => (pubSub.subscribe as unknown as Subscribe)(topic, ...route),
  };
}

/** Events stay inside this process (fine when API and worker run in one process, and in unit tests). */
export function createMemoryEventBus(): EventBus {
  // Many subscribers per topic are normal (several tabs on one recovery): no listener-count warning.
  const eventTarget = new EventTarget();
  setMaxListeners(0, eventTarget);
  return busOver(createPubSub<EventMap>({ eventTarget: eventTarget as never }));
}

/** ioredis options: a bounded connect, one retry per command, and a reconnect within half a second of Redis's return. */
export const REDIS_OPTIONS = { connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: (times: number) => Math.min(times * 100, 500) };

/** Events cross processes through Redis: every API and worker process with the same REDIS_URL shares them. */
export function createRedisEventBus(redisUrl: string, onError: (err: Error) => void = () => {}): EventBusHandle {
  const publishClient = new Redis(redisUrl, { lazyConnect: false, ...REDIS_OPTIONS });
  // No ready check on the subscriber: ioredis's INFO would hit a connection that already entered
  // subscriber mode (the SUBSCRIBEs queued at start are flushed first) and drop those subscriptions.
  const subscribeClient = new Redis(redisUrl, { lazyConnect: false, ...REDIS_OPTIONS, enableReadyCheck: false });
  publishClient.on("error", onError);
  subscribeClient.on("error", onError);
  // yoga's event target neither awaits nor catches these commands: while Redis is down each would be
  // an unhandled rejection (which ends the process). Their failures go to `onError` instead; ioredis
  // subscribes again by itself once it reconnects.
  const quiet = <A extends unknown[]>(call: (...args: A) => Promise<unknown>) => (...args: A) => void call(...args).catch(onError);
  const eventTarget = createRedisEventTarget({
    publishClient: { publish: quiet((channel: string, message: string) => publishClient.publish(channel, message)) } as unknown as Redis,
    subscribeClient: {
      on: (event: "message", listener: (channel: string, message: string) => void) => subscribeClient.on(event, listener),
      subscribe: quiet((topic: string) => subscribeClient.subscribe(topic)),
      unsubscribe: quiet((topic: string) => subscribeClient.unsubscribe(topic)),
    } as unknown as Redis,
  });
  return {
    bus: busOver(createPubSub<EventMap>({ eventTarget })),
    transport: "redis",
    async close() {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}

/** With a Redis URL every process shares events through Redis; without one they stay in this process. */
export function createEventBus(redisUrl?: string, onError: (err: Error) => void = () => {}): EventBusHandle {
  if (!redisUrl) return { bus: createMemoryEventBus(), transport: "memory", close: async () => {} };
  return createRedisEventBus(redisUrl, onError);
}
