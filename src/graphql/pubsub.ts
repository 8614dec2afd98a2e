import type { Evidence } from "../evidence/types";
import { createPubSub, type PubSub as YogaPubSub } from "@graphql-yoga/subscription";
import { createRedisEventTarget } from "@graphql-yoga/redis-event-target";
import { Redis } from "ioredis";
import { setMaxListeners } from "node:events";
import type { BootCheckRecord } from "../db/schema";

/**
 * The one typed pub/sub module. Payloads are plain JSON (ids, strings, numbers) so they survive
 * the trip through Redis; subscribers re-read the current row, owner-scoped, from the database.
 *
 * With REDIS_URL every API and worker process shares events through Redis; without it events
 * stay inside this process (fine when API and worker run in one process).
 */
export interface BackupChangedEvent {
  backupId: string;
  userId: string;
}

export interface InstanceChangedEvent {
  instanceId: string;
  userId: string;
}

export interface SessionsRevokedEvent {
  userId: string;
  /** The revoked sessions, or "ALL" for log-out-everywhere. */
  sessionIds: string[] | "ALL";
}

/** A recovery as it is right now (JSON-safe: dates as ISO strings), carried in the event itself so
 * every subscriber sees every state in order even when the row has moved on. */
export interface RecoverySnapshot {
  id: string;
  userId: string;
  backupId: string;
  target: "AWS" | "LOCAL";
  state: "PENDING" | "PREPARING" | "IMPORTING" | "LAUNCHING" | "CHECKING" | "COMPLETED" | "FAILED" | "CANCELLED";
  stepProgress: number;
  totalProgress: number;
  message: string | null;
  failureReason: string | null;
  startedAt: string | null;
  deadlineAt: string | null;
  completedAt: string | null;
  createdAt: string;
  version: number;
  bootCheck: BootCheckRecord | null;
  rtoSeconds: number | null;
}

export interface VerificationSnapshot {
  id: string;
  userId: string;
  backupId: string;
  status: "PENDING" | "RUNNING" | "VERIFIED" | "FAILED" | "INCONCLUSIVE";
  bootSeconds: number | null;
  evidence: Evidence[];
  screenText: string | null;
  screenshotKey: string | null;
  failureReason: string | null;
  startedAt: string | null;
  checkedAt: string | null;
  version: number;
}

export type PubSubEvents = {
  /** Routed by backup id. */
  VERIFICATION_CHANGED: [backupId: string, payload: VerificationSnapshot];
  /** Routed by recovery id. */
  RECOVERY_CHANGED: [recoveryId: string, payload: RecoverySnapshot];
  /** Routed by user id: each user only ever hears about their own backups. */
  BACKUP_CHANGED: [userId: string, payload: BackupChangedEvent];
  /** Routed by user id: a machine of theirs was recorded, or changed state or address. */
  INSTANCE_CHANGED: [userId: string, payload: InstanceChangedEvent];
  SESSIONS_REVOKED: [payload: SessionsRevokedEvent];
};

export const Topic = {
  VERIFICATION_CHANGED: "VERIFICATION_CHANGED",
  RECOVERY_CHANGED: "RECOVERY_CHANGED",
  BACKUP_CHANGED: "BACKUP_CHANGED",
  INSTANCE_CHANGED: "INSTANCE_CHANGED",
  SESSIONS_REVOKED: "SESSIONS_REVOKED",
} as const satisfies Record<keyof PubSubEvents, keyof PubSubEvents>;

export type AppPubSub = YogaPubSub<PubSubEvents>;

export interface PubSubHandle {
  pubSub: AppPubSub;
  /** "redis" when events cross processes. */
  transport: "memory" | "redis";
  close(): Promise<void>;
}

export function createAppPubSub(redisUrl?: string, onError: (err: Error) => void = () => {}): PubSubHandle {
  if (!redisUrl) {
    // Many subscribers per topic are normal (several tabs on one recovery): no listener-count warning.
    const eventTarget = new EventTarget();
    setMaxListeners(0, eventTarget);
    return { pubSub: createPubSub<PubSubEvents>({ eventTarget: eventTarget as never }), transport: "memory", close: async () => {} };
  }
  const publishClient = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 3 });
  // No ready check on the subscriber: ioredis's INFO would hit a connection that already entered
  // subscriber mode (the SUBSCRIBEs queued at start are flushed first) and drop those subscriptions.
  const subscribeClient = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 3, enableReadyCheck: false });
  publishClient.on("error", onError);
  subscribeClient.on("error", onError);
  const eventTarget = createRedisEventTarget({ publishClient, subscribeClient });
  return {
    pubSub: createPubSub<PubSubEvents>({ eventTarget }),
    transport: "redis",
    async close() {
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}
