import type { BootCheckRecord, VerificationRow } from "../db/schema";

/**
 * The domain's events: one topic each, with its payload. Payloads are plain JSON (ids, strings,
 * numbers) so they survive the trip through Redis; subscribers that need more re-read the current
 * row, owner-scoped, from the database.
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

/** A notification was raised for the user (issue 16); subscribers re-read it, owner-scoped. */
export interface NotificationAddedEvent {
  notificationId: string;
  userId: string;
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
  /**
   * Set by the API on what it sends a subscriber (never published): whether the recovery waits for
   * a worker (ISO since, what was observed). Absent: not looked at.
   */
  waitingForWorker?: { since: string; observed: string } | null;
}

/** An upload as it is right now (JSON-safe: dates as ISO strings), carried in the event itself. */
export interface UploadSnapshot {
  id: string;
  userId: string;
  backupId: string;
  sourceName: string;
  status: "ACTIVE" | "COMPLETED" | "FAILED" | "ABANDONED";
  bytesSent: number;
  chunksSent: number;
  chunksTotal: number | null;
  bytesTotal: number | null;
  bytesDone: number;
  rate: number;
  failureReason: string | null;
  startedAt: string;
  lastActivityAt: string | null;
  progressAt: string | null;
  completedAt: string | null;
  version: number;
}

/** One piece of boot evidence, as the verification row stores it (the evidence collector's shape). */
export type VerificationEvidence = NonNullable<VerificationRow["evidence"]>[number];

export interface VerificationSnapshot {
  id: string;
  userId: string;
  backupId: string;
  status: "PENDING" | "RUNNING" | "VERIFIED" | "FAILED" | "INCONCLUSIVE";
  bootSeconds: number | null;
  evidence: VerificationEvidence[];
  screenText: string | null;
  screenshotKey: string | null;
  failureReason: string | null;
  startedAt: string | null;
  checkedAt: string | null;
  version: number;
}

/**
 * What `publish` takes for each topic: `[routing id, payload]` for a routed topic (a subscriber
 * listens to one id), `[payload]` for a topic every subscriber hears.
 */
export type EventMap = {
  /** Routed by backup id. */
  VERIFICATION_CHANGED: [backupId: string, payload: VerificationSnapshot];
  /** Routed by recovery id. */
  RECOVERY_CHANGED: [recoveryId: string, payload: RecoverySnapshot];
  /** Routed by user id: each user only ever hears about their own backups. */
  BACKUP_CHANGED: [userId: string, payload: BackupChangedEvent];
  /** Routed by user id: a machine of theirs was recorded, or changed state or address. */
  INSTANCE_CHANGED: [userId: string, payload: InstanceChangedEvent];
  /** Routed by user id: a notification of theirs was raised. */
  NOTIFICATION_ADDED: [userId: string, payload: NotificationAddedEvent];
  /** Routed by user id: one of their uploads progressed or ended (at most ~2 per second per upload). */
  UPLOAD_CHANGED: [userId: string, payload: UploadSnapshot];
  /** Not routed: every API process closes the revoked sessions' sockets it holds. */
  SESSIONS_REVOKED: [payload: SessionsRevokedEvent];
};

export type EventTopic = keyof EventMap;

export const Topic = {
  VERIFICATION_CHANGED: "VERIFICATION_CHANGED",
  RECOVERY_CHANGED: "RECOVERY_CHANGED",
  BACKUP_CHANGED: "BACKUP_CHANGED",
  INSTANCE_CHANGED: "INSTANCE_CHANGED",
  SESSIONS_REVOKED: "SESSIONS_REVOKED",
  NOTIFICATION_ADDED: "NOTIFICATION_ADDED",
  UPLOAD_CHANGED: "UPLOAD_CHANGED",
} as const satisfies { [K in EventTopic]: K };

/** Whether a string names one of the topics (for adapters that receive topics as plain strings). */
export function isEventTopic(topic: string): topic is EventTopic {
  return Object.hasOwn(Topic, topic);
}
