/**
 * The workflows' contracts: every workflow's input and output, and per workflow ONE interface of
 * the activities it calls. Types only — nothing here runs. Workflows import these types and
 * `@temporalio/workflow`, nothing else; activity factories in src/ return objects that satisfy the
 * interfaces; services start workflows through a port typed with the inputs (src/temporal/workflows.ts).
 *
 * What crosses a workflow boundary is written into Temporal's history and replayed, so these shapes
 * are stated here on their own (not borrowed from the database schema or a compute adapter): changing
 * one is a change of contract.
 */

// ---------------------------------------------------------------- shared shapes

/** Where a recovered machine runs. */
export type TargetKind = "AWS" | "LOCAL";

/** What a boot check or verification concluded. */
export type BootVerdict = "VERIFIED" | "FAILED" | "INCONCLUSIVE";

/** The composed raw disk image in the imports bucket. */
export interface ComposedImage {
  bucket: string;
  key: string;
  sizeBytes: number;
  /** Bytes of non-zero chunks (what a sparse copy of the image occupies); unknown = sizeBytes. */
  dataBytes?: number;
}

/** A machine as its provider reports it. */
export interface InstanceStatus {
  state: "pending" | "running" | "stopping" | "stopped" | "terminated" | "lost";
  publicAddress?: string;
  privateAddress?: string;
  zone?: string;
}

// ---------------------------------------------------------------- connectivityCheck

export interface ConnectivityActivities {
  /** Proves the worker picks up work: answers with the process that ran it. */
  echo(message: string): Promise<string>;
}

// ---------------------------------------------------------------- recoveryWorkflow

export interface RecoveryWorkflowInput {
  recoveryId: string;
  userId: string;
  backupId: string;
  target: TargetKind;
  /** Name of the recovered machine. */
  name: string;
  allowedCidr: string;
  /** Local target: not offered to the user (boot verification). */
  isolated?: boolean;
  /** Outbound internet for the machine (AWS only; off by default). */
  allowInternet?: boolean;
  /**
   * The machine's declared TCP ports: forwarded by the target and the only ones its private access
   * point admits (absent in runs started before private access: the target's default).
   */
  ports?: number[];
  /** Hard limit measured from the workflow's start (24 h in production, seconds in tests). */
  timeLimitMs: number;
  pollIntervalMs: number;
  /** How fast a dead worker is noticed mid-step. */
  heartbeatTimeoutMs: number;
  /** "Checking it started": the boot-evidence collector on the launched machine (absent: no check). */
  bootCheck?: { timeoutMs: number; pollIntervalMs: number; ports: number[]; bootMarker?: string; graceMs?: number };
}

export type RecoveryOutcome = { state: "COMPLETED"; instanceRowId: string; instanceId: string } | { state: "FAILED"; reason: string; cleanedUp: string[] };

/** Provider ids the workflow collects as it goes, for compensation. */
export interface RecoveryCleanup {
  recoveryId: string;
  userId: string;
  target: TargetKind;
  composedKey?: string;
  composeUploadId?: string;
  importTaskId?: string;
  imageId?: string;
  snapshotIds?: string[];
  instanceId?: string;
  securityGroupId?: string;
  /** The boot check's screenshot in the artifacts bucket. */
  checkScreenshotKey?: string;
}

/** What the recovery's boot check found, for the workflow and the final message. */
export interface BootCheckOutcome {
  status: BootVerdict;
  reason?: string;
  rtoSeconds?: number;
}

export interface CheckBootInput {
  recoveryId: string;
  userId: string;
  target: TargetKind;
  instanceId: string;
  launchedAtMs: number;
  timeoutMs: number;
  pollIntervalMs: number;
  ports: number[];
  bootMarker?: string;
  /** After the first decisive signal, how long to keep collecting corroborating evidence. */
  graceMs?: number;
}

export interface LaunchInstanceInput {
  recoveryId: string;
  userId: string;
  target: TargetKind;
  imageId: string;
  name: string;
  allowedCidr: string;
  isolated?: boolean;
  allowInternet?: boolean;
  /** Declared TCP ports (absent: the target's default). */
  ports?: number[];
}

export interface OpenAccessPointInput {
  recoveryId: string;
  userId: string;
  target: TargetKind;
  /** The provider's id of the running machine. */
  instanceId: string;
  ports: number[];
}

/** How the user reaches the recovered machine: WireGuard to `endpoint`, then `tunnelAddress` on `ports`. */
export interface PrivateAccessInfo {
  endpoint: string;
  tunnelAddress: string;
  ports: number[];
}

/** The activities recoveryWorkflow calls. */
export interface RecoveryActivities {
  beginRecovery(input: { recoveryId: string; deadlineAt: number }): Promise<void>;
  /** PREPARING: the restore point composed server-side (uploadId: the multipart upload, for cleanup). */
  composeImage(input: { recoveryId: string; userId: string; backupId: string }): Promise<ComposedImage & { uploadId?: string }>;
  /** `attempt`: the step's attempt as Temporal counted it (the second half of the step goes on counting from it). */
  startImport(input: { recoveryId: string; target: TargetKind; image: ComposedImage }): Promise<{ importTaskId: string; attempt?: number }>;
  /** `stepAttempt`: startImport's attempt (absent in histories from before it was passed: 1). */
  waitForImport(input: { recoveryId: string; target: TargetKind; importTaskId: string; pollIntervalMs: number; stepAttempt?: number }): Promise<{ imageId: string; snapshotIds: string[] }>;
  launchInstance(input: LaunchInstanceInput): Promise<{ instanceId: string; securityGroupId?: string; launchedAtMs: number; attempt?: number }>;
  /**
   * `launchedAtMs` (launchInstance's): an eventually consistent provider's "not found" shortly after
   * it means "not visible yet", on whichever worker polls. Absent in runs started before it was passed.
   * `stepAttempt`: launchInstance's attempt (absent in older histories: 1).
   */
  waitForInstance(input: { recoveryId: string; target: TargetKind; instanceId: string; pollIntervalMs: number; launchedAtMs?: number; stepAttempt?: number }): Promise<InstanceStatus>;
  /**
   * LAUNCHING, last: opens the machine's WireGuard access point (idempotent per recovery); null when
   * the target offers no private access.
   */
  openAccessPoint(input: OpenAccessPointInput): Promise<PrivateAccessInfo | null>;
  checkBoot(input: CheckBootInput): Promise<BootCheckOutcome>;
  deleteComposedImage(input: { recoveryId: string; key: string }): Promise<void>;
  /** The instances row (id returned) and the COMPLETED state. */
  completeRecovery(input: {
    recoveryId: string;
    userId: string;
    target: TargetKind;
    instanceId: string;
    name: string;
    status: InstanceStatus;
    bootCheck?: BootCheckOutcome;
    /** Its private access point (how to reach it), when one was opened. */
    access?: PrivateAccessInfo | null;
  }): Promise<string>;
  /** Compensation: removes what the recovery created; returns what it removed. */
  cleanupRecovery(input: RecoveryCleanup): Promise<string[]>;
  failRecovery(input: { recoveryId: string; state: "FAILED" | "CANCELLED"; failureReason: string; message: string }): Promise<void>;
}

// ---------------------------------------------------------------- reconcileRecoveries, terminateStaleInstances

export interface ReconcileResult {
  checked: number;
  markedLost: number;
}

/** Temporal's name for a workflow's status (RUNNING, COMPLETED, FAILED, …), or NOT_FOUND. */
export type WorkflowStatusName = string;

/** The activities reconcileRecoveries calls. */
export interface ReconcileActivities {
  /** Active recoveries not updated for `olderThanMs` (candidates). */
  staleActiveRecoveries(input: { olderThanMs: number }): Promise<{ id: string; workflowId: string }[]>;
  workflowStatus(workflowId: string): Promise<WorkflowStatusName>;
  markLostRecoveries(input: { recoveryIds: string[]; reason: string }): Promise<number>;
}

/** The activities terminateStaleInstances calls. */
export interface StaleInstanceActivities {
  /** Terminates instances stopped for longer than `olderThanMs`; returns their row ids. */
  terminateStaleInstances(input: { olderThanMs: number }): Promise<string[]>;
}

// ---------------------------------------------------------------- syncInstanceStates

/** One batch of the instance state sync. */
export interface InstanceSyncBatchResult {
  checked: number;
  /** Row ids whose state changed. */
  changed: string[];
  /** Row ids that became STOPPED (the stopped-machine clean-up's clock starts). */
  stopped: string[];
  /** Machines of a provider the worker has no target for. */
  skipped: number;
  /** Where the next batch starts (absent: the last batch). */
  nextAfterId?: string;
}

export interface InstanceSyncInput {
  /** Machines per activity (and per provider read): default 100. */
  batchSize?: number;
  /** Only these users' machines (default: every user's). */
  userIds?: string[];
}

export interface InstanceSyncResult {
  batches: number;
  checked: number;
  changed: number;
  stopped: string[];
  skipped: number;
}

/** The activities syncInstanceStates calls. */
export interface InstanceSyncActivities {
  /** Reads the next `limit` machines (not TERMINATED, by row id after `afterId`) from their providers and stores what changed. */
  syncInstanceBatch(input: { afterId?: string; limit: number; userIds?: string[] }): Promise<InstanceSyncBatchResult>;
}

// ---------------------------------------------------------------- verifyBackupWorkflow

export interface VerificationWorkflowInput {
  verificationId: string;
  userId: string;
  backupId: string;
  bootMarker?: string;
  /** Guest TCP ports whose banner/reply is service evidence. */
  ports: number[];
  /** After the first decisive evidence, collect corroborating evidence at most this long. */
  graceMs: number;
  /** Nothing decisive within this long after launch: INCONCLUSIVE. */
  bootTimeoutMs: number;
  pollIntervalMs: number;
  heartbeatTimeoutMs: number;
}

export interface VerifyBackupResult {
  status: BootVerdict;
  bootSeconds?: number;
  failureReason?: string;
}

/** What the verification's evidence collector concluded. */
export interface BootEvidenceOutcome {
  verdict: BootVerdict;
  /** Seconds from launch to the first positive signal (VERIFIED only). */
  bootSeconds?: number;
  /** The failure evidence in words (FAILED), or why nothing was decided (INCONCLUSIVE). */
  reason?: string;
}

export interface AwaitBootEvidenceInput {
  verificationId: string;
  userId: string;
  instanceId: string;
  launchedAtMs: number;
  bootMarker?: string;
  ports: number[];
  graceMs: number;
  bootTimeoutMs: number;
  pollIntervalMs: number;
}

/** What a verification created, for its cleanup (each part absent until created). */
export interface VerificationCleanup {
  verificationId?: string;
  /** The owner: with the verification id it names the composed image, known or not (a composition cut short). */
  userId?: string;
  instanceId?: string;
  imageId?: string;
  composedKey?: string;
}

/** The activities verifyBackupWorkflow calls. */
export interface VerificationActivities {
  verificationStarted(input: { verificationId: string }): Promise<void>;
  composeForVerification(input: { verificationId: string; userId: string; backupId: string }): Promise<ComposedImage>;
  importForVerification(input: { verificationId: string; image: ComposedImage }): Promise<{ imageId: string }>;
  launchIsolated(input: { verificationId: string; userId: string; imageId: string; ports?: number[] }): Promise<{ instanceId: string; launchedAtMs: number }>;
  awaitBootEvidence(input: AwaitBootEvidenceInput): Promise<BootEvidenceOutcome>;
  cleanupVerification(input: VerificationCleanup): Promise<void>;
  finishVerification(input: { verificationId: string; status: BootVerdict; bootSeconds?: number; failureReason?: string }): Promise<void>;
}

// ---------------------------------------------------------------- drillWorkflow

export type DrillTrigger = "SCHEDULE" | "AFTER_BACKUP" | "MANUAL";

export interface DrillInput {
  userId: string;
  sourceName: string;
  trigger: DrillTrigger;
  /** From the drill's start: past this, the verification is cancelled (and cleans up) and the drill FAILS. */
  timeLimitMs: number;
}

export interface DrillResult {
  drillId?: string;
  status: "VERIFIED" | "FAILED" | "INCONCLUSIVE" | "CANCELLED" | "SKIPPED";
  rtoSeconds?: number;
  reason?: string;
}

export interface BeginDrillInput {
  userId: string;
  sourceName: string;
  trigger: DrillTrigger;
  workflowId: string;
  startedAtMs: number;
}

export interface BeginDrillResult {
  drillId: string;
  /** Set when the drill has nothing to run (the source's latest restore point is missing or broken). */
  failure?: string;
  /** The policy was removed before a scheduled run started: nothing recorded. */
  skipped?: string;
  /** The verification to run as the drill's child workflow. */
  verification?: { id: string; workflowId: string; args: VerificationWorkflowInput; executionTimeoutMs: number };
}

export type FinishedDrillStatus = "VERIFIED" | "FAILED" | "INCONCLUSIVE" | "CANCELLED";

export interface FinishDrillInput {
  drillId: string;
  status: FinishedDrillStatus;
  reason?: string;
}

export interface FinishDrillResult {
  status: FinishedDrillStatus;
  rtoSeconds?: number;
  reason?: string;
}

/** The activities drillWorkflow calls (the boot itself is the verification's, run as a child). */
export interface DrillActivities {
  beginDrill(input: BeginDrillInput): Promise<BeginDrillResult>;
  finishDrill(input: FinishDrillInput): Promise<FinishDrillResult>;
}

// ---------------------------------------------------------------- backupMaintenance, purgeSessions

/** What a maintenance run, and each of its steps, covers. */
export interface MaintenanceScope {
  /**
   * Only these users: their trash, retention, unfinished uploads and chunks (an operator's run for
   * some accounts). Default: everyone's (the scheduled run).
   */
  userIds?: string[];
}

export type BackupMaintenanceInput = MaintenanceScope;

export interface BackupMaintenanceResult {
  retentionDeleted: string[];
  /** Trashed backups whose DELETION_DELAY passed, deleted this run (issue 18). */
  trashDeleted: string[];
  /** UPLOADING backups aborted because their upload was abandoned (UPLOAD_EXPIRY). */
  expiredUploads: string[];
  users: number;
  deletedChunks: number;
  freedBytes: number;
  /** Users whose GC failed after retries (their chunks are left alone; others still run). */
  failedUsers: { userId: string; error: string }[];
}

export interface TrashPurgeResult {
  /** Backups whose deleteAfter passed, now DELETED. */
  deleted: string[];
  /** Users whose pending (shorter) retention policy took effect. */
  policiesApplied: string[];
  /** Trashed sources deleted: their restore points now DELETED (also in `deleted`), agent keys revoked. */
  sourcesDeleted?: { userId: string; sourceName: string; backups: string[]; agentKeys: number }[];
  /** Pending "revoke all agent keys" carried out: how many keys each revoked. */
  agentKeysRevoked?: { userId: string; keys: number }[];
  /** Due restore points left for a later run: an active recovery or verification reads them (or a restore point built on them). */
  waiting?: string[];
}

export interface RetentionResult {
  users: number;
  deleted: string[];
}

export interface GcResult {
  userId: string;
  scanned: number;
  referenced: number;
  deletedChunks: number;
  freedBytes: number;
  deletedManifests: number;
  /** Unreferenced chunks and manifests left because their Object Lock retention has not passed (a later run deletes them). */
  lockedChunks: number;
  lockedManifests: number;
  /** Referenced chunks found hidden behind a delete marker and brought back from their locked version. */
  restoredChunks: number;
}

/** The activities backupMaintenance calls. */
export interface MaintenanceActivities {
  /** Carries out the trash's due deletions and retention shortenings (issue 18). */
  purgeTrash(scope?: MaintenanceScope): Promise<TrashPurgeResult>;
  /** Soft-deletes the restore points each user's retention policy no longer keeps. */
  applyRetention(scope?: MaintenanceScope): Promise<RetentionResult>;
  /** Aborts UPLOADING backups untouched for UPLOAD_EXPIRY (their chunks become collectable). */
  expireUploads(scope?: MaintenanceScope): Promise<string[]>;
  usersWithBackups(): Promise<string[]>;
  /** Deletes one user's chunks that no live manifest or active upload references. */
  collectGarbage(userId: string): Promise<GcResult>;
}

/** The activities purgeSessions calls. */
export interface SessionPurgeActivities {
  /** Deletes sessions that expired or were revoked more than `olderThanMs` ago. */
  purgeSessions(olderThanMs: number): Promise<number>;
}

// ---------------------------------------------------------------- detectMissedBackups

export interface MissedBackupResult {
  /** Sources looked at. */
  checked: number;
  /** BACKUP_MISSED notifications raised by this run (a slot already reported is not raised again). */
  raised: number;
}

/** The activities detectMissedBackups calls. */
export interface MissedBackupActivities {
  /** Every source whose latest slot plus grace passed with no backup started since: BACKUP_MISSED, once per slot. */
  detectMissedBackups(): Promise<MissedBackupResult>;
}

// ---------------------------------------------------------------- deliverNotification, sweepNotificationDeliveries, warnTerminatingInstances

/** How a notification's deliveries are retried: exponential backoff, bounded in total time. */
export interface DeliveryRetry {
  initialIntervalMs: number;
  maximumIntervalMs: number;
  /** No attempt starts later than this after the first (the activities' scheduleToClose). */
  totalMs: number;
}

export interface DeliverNotificationInput {
  notificationId: string;
  retry: DeliveryRetry;
  /** One attempt (an SMTP send or a webhook POST) is abandoned after this long. */
  attemptTimeoutMs: number;
}

/** Who a notification goes to, decided once when its delivery starts. */
export interface NotificationDeliveryPlan {
  /** The user's address, when their preferences e-mail this kind. */
  email: boolean;
  /** The user's webhooks subscribed to this kind. */
  webhookIds: string[];
}

/** DELIVERED; SKIPPED: nothing to send (the webhook was removed, the notification is gone). */
export type DeliveryOutcome = "DELIVERED" | "SKIPPED";

export interface DeliverNotificationResult {
  email: DeliveryOutcome | "FAILED" | "NOT_SENT";
  webhooks: { webhookId: string; outcome: DeliveryOutcome | "FAILED" }[];
}

/** Error type of a delivery that retrying cannot help (a 4xx answer, a refused address, a relay's 5xx). */
export const DELIVERY_REJECTED = "DELIVERY_REJECTED";

/** The activities deliverNotification and warnTerminatingInstances call. */
export interface AlertActivities {
  planNotificationDelivery(input: { notificationId: string }): Promise<NotificationDeliveryPlan>;
  /** Sends the notification's e-mail; records the attempt. Throws (retryable, or DELIVERY_REJECTED). */
  emailNotification(input: { notificationId: string }): Promise<DeliveryOutcome>;
  /** POSTs the notification to one webhook; records the attempt. Throws (retryable, or DELIVERY_REJECTED). */
  postNotificationWebhook(input: { notificationId: string; webhookId: string }): Promise<DeliveryOutcome>;
  /** Starts the delivery workflows a raise could not start (Temporal was down), for notifications older than `olderThanMs`; returns how many. */
  startPendingDeliveries(input: { olderThanMs: number }): Promise<number>;
  /** Raises INSTANCE_TERMINATING for machines the stale-instance clean-up will terminate within `aheadMs`; returns how many were raised. */
  warnTerminatingInstances(input: { stoppedTtlMs: number; aheadMs: number }): Promise<number>;
}

// ---------------------------------------------------------------- the worker

/** Everything one worker registers: the union of every workflow's activities (names are unique). */
export type WorkerActivities = ConnectivityActivities &
  AlertActivities &
  RecoveryActivities &
  ReconcileActivities &
  StaleInstanceActivities &
  InstanceSyncActivities &
  VerificationActivities &
  DrillActivities &
  MaintenanceActivities &
  SessionPurgeActivities &
  MissedBackupActivities;
