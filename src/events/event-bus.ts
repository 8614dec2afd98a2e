import type { EventMap, EventTopic } from "./topics";

/** The payload a topic carries. */
export type EventPayload<K extends EventTopic> = EventMap[K] extends [unknown, infer P] ? P : EventMap[K][0];

/** What a subscriber names after the topic: the routing id for a routed topic, nothing otherwise. */
export type EventRoute<K extends EventTopic> = EventMap[K] extends [infer Id, unknown] ? [id: Id] : [];

/**
 * The publish/subscribe port: services publish domain events through it, the transport (GraphQL
 * subscriptions, the WebSocket session registry) and live views subscribe. Adapters: memory (one
 * process) and Redis (every API and worker process sharing REDIS_URL), see `./adapters`.
 */
export interface EventBus {
  /** Fire and forget: every current subscriber of the topic (and routing id), in every process on the bus, gets the payload. */
  publish<K extends EventTopic>(topic: K, ...args: EventMap[K]): void;
  /**
   * The topic's events (for a routed topic: those published with this id), in publish order.
   * Lazy: it listens from its first `next()` (wrap it in `eager()` to listen at once); `return()`
   * stops listening.
   */
  subscribe<K extends EventTopic>(topic: K, ...route: EventRoute<K>): AsyncIterableIterator<EventPayload<K>>;
  /**
   * Whether this process hears every event published on the bus right now: a number that changes
   * whenever it may have missed some (its connection to the transport dropped), or undefined while
   * it may be missing them (disconnected, or a subscription not yet confirmed). What a process caches
   * on the strength of "I would hear about it" (sessions, until SESSIONS_REVOKED) is only valid while
   * this answers the number it answered when the entry was made. Absent: cannot tell (cache nothing).
   */
  delivery?(): number | undefined;
}

/** An event bus and what it holds open. */
export interface EventBusHandle {
  bus: EventBus;
  /** "redis" when events cross processes. */
  transport: "memory" | "redis";
  close(): Promise<void>;
}
