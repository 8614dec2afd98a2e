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
function busOver(pubSub: PubSub<EventMap>, delivery: () => number | undefined): EventBus {
  // yoga types `subscribe`'s arguments by a conditional type that a generic topic cannot narrow.
  type Subscribe = (topic: EventTopic, id?: unknown) => AsyncIterableIterator<never>;
  return {
    publish: (topic, ...args) => pubSub.publish(topic, ...args),
    subscribe: (topic, ...route) => (pubSub.subscribe as unknown as Subscribe)(topic, ...route),
    delivery,
  };
}

/** Events stay inside this process (fine when API and worker run in one process, and in unit tests). */
export function createMemoryEventBus(): EventBus {
  // Many subscribers per topic are normal (several tabs on one recovery): no listener-count warning.
  const eventTarget = new EventTarget();
  setMaxListeners(0, eventTarget);
  // In one process every event reaches every listener: nothing is ever missed.
  return busOver(createPubSub<EventMap>({ eventTarget: eventTarget as never }), () => 0);
}

/** ioredis options: a bounded connect, one retry per command, and a reconnect within half a second of Redis's return. */
export const REDIS_OPTIONS = { connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: (times: number) => Math.min(times * 100, 500) };

/** Events cross processes through Redis: every API and worker process with the same REDIS_URL shares them. */
export function createRedisEventBus(redisUrl: string, onError: (err: Error) => void = () => {}): EventBusHandle {
  // Publishes made in the same tick go out in one write (a worker's batch of progress events: each
  // PUBLISH was a write(2) of its own, and on loopback the write does Redis's receive work too).
  const publishClient = new Redis(redisUrl, { lazyConnect: false, ...REDIS_OPTIONS, enableAutoPipelining: true });
  // No ready check on the subscriber: ioredis's INFO would hit a connection that already entered
  // subscriber mode (the SUBSCRIBEs queued at start are flushed first) and drop those subscriptions.
  const subscribeClient = new Redis(redisUrl, { lazyConnect: false, ...REDIS_OPTIONS, enableReadyCheck: false });
  publishClient.on("error", onError);
  subscribeClient.on("error", onError);
  // yoga's event target neither awaits nor catches these commands: while Redis is down each would be
  // an unhandled rejection (which ends the process). Their failures go to `onError` instead; ioredis
  // subscribes again by itself once it reconnects.
  const quiet = <A extends unknown[]>(call: (...args: A) => Promise<unknown>) => (...args: A) => void call(...args).catch(onError);
  // Delivery: the subscriber connection is up, every SUBSCRIBE sent has been confirmed, and since the
  // last (re)connect a PING has come back (ioredis re-subscribes on reconnect before it: Redis answers
  // in order). `epoch` moves on every connection loss: whatever was cached before it may have missed a
  // revocation published meanwhile. A SUBSCRIBE that failed leaves the bus "not delivering" for good.
  let epoch = 0;
  let live = false;
  let unconfirmed = 0;
  let subscribeFailed = false;
  subscribeClient.on("close", () => {
    live = false;
    epoch++;
  });
  subscribeClient.on("ready", () => {
    const at = epoch;
    subscribeClient.ping().then(
      () => void (at === epoch && subscribeClient.status === "ready" && (live = true)),
      onError,
    );
  });
  const subscribe = (topic: string) => {
    unconfirmed++;
    return subscribeClient.subscribe(topic).then(
      () => void unconfirmed--,
      (err: unknown) => {
        unconfirmed--;
        subscribeFailed = true;
        throw err;
      },
    );
  };
  const eventTarget = createRedisEventTarget({
    publishClient: { publish: quiet((channel: string, message: string) => publishClient.publish(channel, message)) } as unknown as Redis,
    subscribeClient: {
      on: (event: "message", listener: (channel: string, message: string) => void) => subscribeClient.on(event, listener),
      subscribe: quiet(subscribe),
      unsubscribe: quiet((topic: string) => subscribeClient.unsubscribe(topic)),
    } as unknown as Redis,
  });
  return {
    bus: busOver(createPubSub<EventMap>({ eventTarget }), () => (live && unconfirmed === 0 && !subscribeFailed ? epoch : undefined)),
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
