/**
 * The GraphQL operations the console sends, written out so the bundle needs no GraphQL parser.
 * Same shapes as src/client/operations (RestorePoints, RecoveryTimeline, …).
 */

export type RecoveryState = "PENDING" | "PREPARING" | "IMPORTING" | "LAUNCHING" | "CHECKING" | "COMPLETED" | "FAILED" | "CANCELLED";
export type InstanceState = "PENDING" | "RUNNING" | "STOPPING" | "STOPPED" | "TERMINATED" | "LOST";
export type Target = "AWS" | "LOCAL";

export interface BootEvidence {
  kind: "FIRMWARE" | "SCREEN" | "SERVICE" | "MARKER" | "MACHINE";
  ok: boolean;
  failure: boolean;
  detail: string;
  at: string;
}

export interface Verification {
  id: string;
  status: "PENDING" | "RUNNING" | "VERIFIED" | "FAILED" | "INCONCLUSIVE";
  bootSeconds: number | null;
  /** What the check saw, in order. */
  evidence: BootEvidence[];
  checkedAt: string | null;
  failureReason: string | null;
  /** Presigned, short-lived GET of the screen the check saw. */
  screenshotUrl: string | null;
}

export interface RestorePoint {
  id: string;
  sourceName: string;
  kind: "FULL" | "INCREMENTAL";
  imageSize: number;
  createdAt: string;
  completedAt: string | null;
  status: "UPLOADING" | "COMPLETED" | "ABORTED" | "DELETED";
  restorable: boolean;
  verification: Verification | null;
}

export interface Instance {
  id: string;
  name: string;
  state: InstanceState;
  provider: Target;
  address: string | null;
  privateAddress: string | null;
  lastStoppedAt: string | null;
  createdAt: string;
}

export interface Recovery {
  id: string;
  state: RecoveryState;
  target: Target;
  stepProgress: number;
  totalProgress: number;
  message: string | null;
  failureReason: string | null;
  startedAt: string | null;
  completedAt: string | null;
  createdAt: string;
  version: number;
  /** Seconds from startRecovery to the first sign the machine started. */
  rtoSeconds: number | null;
  bootCheck: BootCheck | null;
}

export interface BootEvidence {
  kind: "FIRMWARE" | "SCREEN" | "SERVICE" | "MARKER" | "MACHINE";
  ok: boolean;
  failure: boolean;
  detail: string;
  at: string;
}

/** "Checking it started": the verdict and what was seen (screenText/screenshotUrl only from the timeline query). */
export interface BootCheck {
  status: "CHECKING" | "VERIFIED" | "FAILED" | "INCONCLUSIVE";
  reason: string | null;
  checkedAt: string | null;
  evidence: BootEvidence[];
  screenText?: string | null;
  screenshotUrl?: string | null;
}

export interface RecoveryEvent {
  id: string;
  step: RecoveryState;
  status: "STARTED" | "SUCCEEDED" | "RETRYING" | "FAILED" | "CANCELLED" | "CLEANUP" | "OBSERVED";
  message: string | null;
  attempt: number;
  createdAt: string;
}

export type BackupSummary = Pick<RestorePoint, "id" | "sourceName" | "kind" | "imageSize" | "createdAt">;

const RECOVERY_FIELDS = "id state target stepProgress totalProgress message failureReason startedAt completedAt createdAt version rtoSeconds bootCheck { status reason checkedAt evidence { kind ok failure detail at } }";
const BACKUP_SUMMARY = "id sourceName kind imageSize createdAt";
const INSTANCE_FIELDS = "id name state provider address privateAddress lastStoppedAt createdAt";

export const LOG_IN = `mutation ConsoleLogIn($input: LogInInput!) { logIn(input: $input) { token expiresAt user { id username email } } }`;
export interface LogInResult {
  logIn: { token: string; expiresAt: string; user: { id: string; username: string; email: string } };
}

export const LOG_OUT = `mutation ConsoleLogOut { logOut }`;

export const RESTORE_POINTS = `query ConsoleRestorePoints($first: Int) {
  backups(first: $first) { totalCount edges { node { ${BACKUP_SUMMARY} completedAt status restorable verification { id status bootSeconds checkedAt failureReason screenshotUrl evidence { kind ok failure detail at } } } } }
}`;
export interface RestorePointsResult {
  backups: { totalCount: number; edges: { node: RestorePoint }[] };
}

export const RECOVERY_TARGETS = `query ConsoleRecoveryTargets { recoveryTargets { default available } }`;
export interface RecoveryTargetsResult {
  recoveryTargets: { default: Target; available: Target[] };
}

export const START_RECOVERY = `mutation ConsoleStartRecovery($input: StartRecoveryInput!) { startRecovery(input: $input) { ${RECOVERY_FIELDS} } }`;
export interface StartRecoveryResult {
  startRecovery: Recovery;
}

export const CANCEL_RECOVERY = `mutation ConsoleCancelRecovery($id: ID!) { cancelRecovery(id: $id) { ${RECOVERY_FIELDS} } }`;

export const RECOVERY_TIMELINE = `query ConsoleRecovery($id: ID!) {
  recovery(id: $id) {
    ${RECOVERY_FIELDS}
    backup { ${BACKUP_SUMMARY} }
    bootCheck { screenText screenshotUrl }
    events { id step status message attempt createdAt }
    instance { ${INSTANCE_FIELDS} }
  }
}`;
export interface RecoveryTimelineResult {
  recovery: Recovery & { backup: BackupSummary; events: RecoveryEvent[]; instance: Instance | null };
}

export const RECOVERY_PROGRESS = `subscription ConsoleRecoveryProgress($recoveryId: ID!) { recoveryProgress(recoveryId: $recoveryId) { ${RECOVERY_FIELDS} } }`;
export interface RecoveryProgressResult {
  recoveryProgress: Recovery;
}

export const RECOVERIES = `query ConsoleRecoveries($first: Int, $filter: RecoveryFilter) {
  recoveries(first: $first, filter: $filter) { totalCount edges { node { ${RECOVERY_FIELDS} backup { ${BACKUP_SUMMARY} } instance { id name state address } } } }
}`;
export interface RecoveriesResult {
  recoveries: { totalCount: number; edges: { node: Recovery & { backup: BackupSummary; instance: Pick<Instance, "id" | "name" | "state" | "address"> | null } }[] };
}

export const INSTANCES = `query ConsoleInstances($first: Int) {
  instances(first: $first) { totalCount edges { node { ${INSTANCE_FIELDS} recovery { id backup { ${BACKUP_SUMMARY} } } } } }
}`;
export interface InstancesResult {
  instances: { totalCount: number; edges: { node: Instance & { recovery: { id: string; backup: BackupSummary } | null } }[] };
}

export const INSTANCE_CHANGED = `subscription ConsoleInstanceChanged { instanceChanged { ${INSTANCE_FIELDS} } }`;
export interface InstanceChangedResult {
  instanceChanged: Instance;
}

export const START_INSTANCE = `mutation ConsoleStartInstance($id: ID!) { startInstance(id: $id) { ${INSTANCE_FIELDS} } }`;
export const STOP_INSTANCE = `mutation ConsoleStopInstance($id: ID!) { stopInstance(id: $id) { ${INSTANCE_FIELDS} } }`;
export const TERMINATE_INSTANCE = `mutation ConsoleTerminateInstance($id: ID!) { terminateInstance(id: $id) { ${INSTANCE_FIELDS} } }`;
export type InstanceMutationResult = { startInstance: Instance } | { stopInstance: Instance } | { terminateInstance: Instance };

export const ACTIVE_STATES: readonly RecoveryState[] = ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING", "CHECKING"];
export const isActive = (s: RecoveryState) => ACTIVE_STATES.includes(s);

export type DrillStatus = "RUNNING" | "VERIFIED" | "FAILED" | "INCONCLUSIVE" | "CANCELLED";

export interface SourceHealth {
  sourceName: string;
  lastVerified: string | null;
  policy: { every: string | null; afterEveryBackup: boolean; ports: number[] } | null;
  lastDrill: {
    id: string;
    status: DrillStatus;
    rtoSeconds: number | null;
    evidenceSummary: string | null;
    failureReason: string | null;
    startedAt: string;
    verification: { screenshotUrl: string | null } | null;
  } | null;
  rtoTrend: { at: string; rtoSeconds: number | null; verdict: DrillStatus }[];
}

/** A server's drills: policy, last verdict (with the screen it saw) and RTO trend. */
export const SOURCE_HEALTH = `query ConsoleSourceHealth($sourceName: String!) {
  sourceHealth(sourceName: $sourceName) {
    sourceName lastVerified
    policy { every afterEveryBackup ports }
    lastDrill { id status rtoSeconds evidenceSummary failureReason startedAt verification { screenshotUrl } }
    rtoTrend { at rtoSeconds verdict }
  }
}`;
export interface SourceHealthResult {
  sourceHealth: SourceHealth;
}
