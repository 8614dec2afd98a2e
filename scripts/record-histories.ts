/**
 * Records the histories the replay test (test/unit/workflow-replay.test.ts) replays: representative
 * runs of every workflow in workflows/, with mocked activities, on the Temporal dev server
 * (TEMPORAL_ADDRESS, default 127.0.0.1:7233). Each run's history is written to
 * test/fixtures/histories/<name>.json (the Temporal JSON history format).
 *
 *   npm run histories:record              all scenarios
 *   npm run histories:record -- NAME…     only these (e.g. a new behaviour's new scenario)
 *
 * Re-record only to ADD a behaviour (a new workflow, a new path, a patch()ed change, whose new
 * scenario shows the new code path). Never re-record to make a failing replay pass: a failing replay
 * means a run in flight today would break on the new code — put the change behind `patched()`.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Context } from "@temporalio/activity";
import { Client, Connection, type WorkflowHandle } from "@temporalio/client";
import { ApplicationFailure, CancelledFailure } from "@temporalio/common";
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from "@temporalio/worker";
import { historyToJson } from "../test/helpers/histories";
import type {
  AlertActivities,
  BeginDrillResult,
  DrillActivities,
  InstanceSyncActivities,
  MaintenanceActivities,
  ReconcileActivities,
  RecoveryActivities,
  SessionPurgeActivities,
  MissedBackupActivities,
  StaleInstanceActivities,
  VerificationActivities,
  VerificationWorkflowInput,
  WorkerActivities,
} from "../workflows/contracts";
import { recoveryInput } from "../test/helpers/workflow-inputs";

const root = path.resolve(__dirname, "..");
export const HISTORIES_DIR = path.join(root, "test", "fixtures", "histories");

/** Activities that answer like successful steps; a scenario overrides single ones. */
function activities(overrides: Partial<WorkerActivities> = {}): WorkerActivities {
  const recovery: RecoveryActivities = {
    beginRecovery: async () => {},
    composeImage: async (i) => ({ bucket: "imports", key: `${i.userId}/recoveries/${i.recoveryId}.raw`, sizeBytes: 4 << 20, uploadId: "upload-1" }),
    startImport: async (i) => ({ importTaskId: `import-${i.recoveryId}` }),
    waitForImport: async () => ({ imageId: "ami-1", snapshotIds: ["snap-1"] }),
    launchInstance: async (i) => ({ instanceId: `i-${i.recoveryId.slice(0, 8)}`, securityGroupId: "sg-1", launchedAtMs: 1_700_000_000_000 }),
    waitForInstance: async () => ({ state: "running", publicAddress: "203.0.113.7" }),
    openAccessPoint: async (i) => ({ endpoint: "198.51.100.1:51820", tunnelAddress: "100.96.0.1", ports: i.ports }),
    checkBoot: async () => ({ status: "VERIFIED", rtoSeconds: 42 }),
    deleteComposedImage: async () => {},
    completeRecovery: async () => "row-1",
    cleanupRecovery: async (r) => [r.instanceId, r.imageId, r.composedKey].filter((x): x is string => !!x).map((x) => `removed ${x}`),
    failRecovery: async () => {},
  };
  const verification: VerificationActivities = {
    verificationStarted: async () => {},
    composeForVerification: async (i) => ({ bucket: "imports", key: `${i.userId}/verifications/${i.verificationId}.raw`, sizeBytes: 4 << 20 }),
    importForVerification: async (i) => ({ imageId: `base-${i.verificationId}` }),
    launchIsolated: async (i) => ({ instanceId: `vm-verify-${i.verificationId}`, launchedAtMs: 1_700_000_000_000 }),
    awaitBootEvidence: async () => ({ verdict: "VERIFIED", bootSeconds: 12.5 }),
    cleanupVerification: async () => {},
    finishVerification: async () => {},
  };
  const drill: DrillActivities = {
    beginDrill: async (i): Promise<BeginDrillResult> => ({
      drillId: "drill-1",
      verification: { id: "verification-1", workflowId: `${i.workflowId}-verification`, args: verificationInput("verification-1"), executionTimeoutMs: 600_000 },
    }),
    finishDrill: async (i) => ({ status: i.status, rtoSeconds: i.status === "VERIFIED" ? 30 : undefined, reason: i.reason }),
  };
  const reconcile: ReconcileActivities = {
    staleActiveRecoveries: async () => [
      { id: "rec-lost", workflowId: "recovery-rec-lost" },
      { id: "rec-alive", workflowId: "recovery-rec-alive" },
    ],
    workflowStatus: async (id) => (id.endsWith("alive") ? "RUNNING" : "NOT_FOUND"),
    markLostRecoveries: async (i) => i.recoveryIds.length,
  };
  const stale: StaleInstanceActivities = { terminateStaleInstances: async () => ["instance-row-1"] };
  const maintenance: MaintenanceActivities = {
    purgeTrash: async () => ({ deleted: [], policiesApplied: [] }),
    applyRetention: async () => ({ users: 2, deleted: ["backup-old"] }),
    expireUploads: async () => [],
    usersWithBackups: async () => ["user-1", "user-2"],
    collectGarbage: async (userId) => {
      if (userId === "user-2") throw ApplicationFailure.nonRetryable("bucket unreadable", "GcFailed");
      return { userId, scanned: 10, referenced: 8, deletedChunks: 2, freedBytes: 2 << 20, deletedManifests: 0, lockedChunks: 0, lockedManifests: 0, restoredChunks: 0 };
    },
  };
  const sessions: SessionPurgeActivities = { purgeSessions: async () => 3 };
  const missed: MissedBackupActivities = { detectMissedBackups: async () => ({ checked: 2, raised: 1 }) };
  const sync: InstanceSyncActivities = {
    syncInstanceBatch: async (i) =>
      i.afterId
        ? { checked: 1, changed: [], stopped: [], skipped: 0 }
        : { checked: 2, changed: ["row-1"], stopped: ["row-1"], skipped: 0, nextAfterId: "row-2" },
  };
  let webhookCalls = 0;
  const alerts: AlertActivities = {
    planNotificationDelivery: async () => ({ email: true, webhookIds: ["webhook-1", "webhook-2"] }),
    emailNotification: async () => "DELIVERED",
    postNotificationWebhook: async (i) => {
      if (i.webhookId === "webhook-2") throw ApplicationFailure.nonRetryable("webhook answered 410 Gone", "DELIVERY_REJECTED");
      // The first attempt fails (a 503), the retry delivers.
      if (++webhookCalls === 1) throw ApplicationFailure.retryable("webhook answered 503", "DELIVERY_FAILED");
      return "DELIVERED";
    },
    warnTerminatingInstances: async () => 1,
    startPendingDeliveries: async () => 2,
  };
  return { echo: async (m) => `pong: ${m}`, ...alerts, ...recovery, ...verification, ...drill, ...reconcile, ...stale, ...maintenance, ...sessions, ...missed, ...sync, ...overrides };
}


function verificationInput(verificationId: string): VerificationWorkflowInput {
  return { verificationId, userId: "user-1", backupId: "backup-1", ports: [22], graceMs: 1_000, bootTimeoutMs: 60_000, pollIntervalMs: 50, heartbeatTimeoutMs: 3_000 };
}

/** Heartbeats until cancelled (a step that never finishes on its own), then rethrows the cancel. */
/** Drives a run: cancels it once `ready` (the step is running), and expects it to end cancelled. */
function cancelOnce(ready: Promise<void>, name: string): (handle: WorkflowHandle) => Promise<void> {
  return async (handle) => {
    await ready;
    await handle.cancel();
    await handle.result().then(
      () => {
        throw new Error(`${name}: the workflow completed instead of being cancelled`);
      },
      (err: unknown) => {
        if (!(err instanceof Error && err.cause instanceof CancelledFailure)) throw err;
      },
    );
  };
}

async function untilCancelled(started?: () => void): Promise<never> {
  started?.();
  const ctx = Context.current();
  for (;;) {
    ctx.heartbeat();
    await ctx.sleep(100);
  }
}

interface Scenario {
  name: string;
  workflowType: string;
  args: unknown[];
  activities: WorkerActivities;
  /** Drives the run (default: wait for its result); the history is fetched once it has closed. */
  drive?: (handle: WorkflowHandle, ready: Promise<void>) => Promise<void>;
  /** Child workflows whose histories are recorded too, by workflow id suffix. */
  children?: string[];
}

function scenarios(): Scenario[] {
  const cancelReady = signal();
  const verificationCancelReady = signal();
  let launches = 0;
  return [
    { name: "recovery-completed", workflowType: "recoveryWorkflow", args: [recoveryInput()], activities: activities() },
    { name: "recovery-completed-without-boot-check", workflowType: "recoveryWorkflow", args: [recoveryInput({ bootCheck: undefined })], activities: activities() },
    {
      name: "recovery-retried",
      workflowType: "recoveryWorkflow",
      args: [recoveryInput()],
      activities: activities({
        launchInstance: async (i) => {
          if (++launches === 1) throw new Error("RequestLimitExceeded: transient");
          return { instanceId: `i-${i.recoveryId.slice(0, 8)}`, securityGroupId: "sg-1", launchedAtMs: 1_700_000_000_000 };
        },
      }),
    },
    {
      name: "recovery-cancelled",
      workflowType: "recoveryWorkflow",
      args: [recoveryInput()],
      activities: activities({ waitForInstance: () => untilCancelled(cancelReady.resolve) }),
      drive: cancelOnce(cancelReady.promise, "recovery-cancelled"),
    },
    {
      name: "recovery-timed-out",
      workflowType: "recoveryWorkflow",
      args: [recoveryInput({ timeLimitMs: 3_000, heartbeatTimeoutMs: 10_000 })],
      activities: activities({ waitForImport: () => untilCancelled() }),
    },
    {
      name: "recovery-compensated",
      workflowType: "recoveryWorkflow",
      args: [recoveryInput()],
      activities: activities({
        launchInstance: async () => {
          throw ApplicationFailure.nonRetryable("No capacity for t3.medium in eu-west-1a", "INSUFFICIENT_CAPACITY");
        },
      }),
    },
    { name: "verification-verified", workflowType: "verifyBackupWorkflow", args: [verificationInput("verification-main")], activities: activities() },
    {
      // Cancelled while the boot evidence is collected: the workflow waits for that step to stop
      // before it cleans up (patch "verification-waits-for-cancelled-step").
      name: "verification-cancelled",
      workflowType: "verifyBackupWorkflow",
      args: [verificationInput("verification-cancelled")],
      activities: activities({ awaitBootEvidence: () => untilCancelled(verificationCancelReady.resolve) }),
      drive: cancelOnce(verificationCancelReady.promise, "verification-cancelled"),
    },
    {
      name: "drill-verified",
      workflowType: "drillWorkflow",
      args: [{ userId: "user-1", sourceName: "web", trigger: "MANUAL", timeLimitMs: 600_000 }],
      activities: activities(),
      children: ["-verification"],
    },
    { name: "reconcile-recoveries", workflowType: "reconcileRecoveries", args: [600_000], activities: activities() },
    { name: "terminate-stale-instances", workflowType: "terminateStaleInstances", args: [14 * 86_400_000], activities: activities() },
    { name: "backup-maintenance", workflowType: "backupMaintenance", args: [{}], activities: activities() },
    // Issue 18: the trash purge (patched "purge-trash") runs first.
    { name: "backup-maintenance-trash", workflowType: "backupMaintenance", args: [{}], activities: activities() },
    { name: "sync-instance-states", workflowType: "syncInstanceStates", args: [{ batchSize: 2 }], activities: activities() },
    { name: "purge-sessions", workflowType: "purgeSessions", args: [86_400_000], activities: activities() },
    {
      name: "deliver-notification",
      workflowType: "deliverNotification",
      args: [{ notificationId: "notification-1", retry: { initialIntervalMs: 50, maximumIntervalMs: 200, totalMs: 60_000 }, attemptTimeoutMs: 30_000 }],
      activities: activities(),
    },
    { name: "sweep-notification-deliveries", workflowType: "sweepNotificationDeliveries", args: [60_000], activities: activities() },
    { name: "warn-terminating-instances", workflowType: "warnTerminatingInstances", args: [14 * 86_400_000, 2 * 86_400_000], activities: activities() },
  ];
}

function signal() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const address = process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233";
  const namespace = process.env.TEMPORAL_NAMESPACE ?? "default";
  Runtime.install({ logger: new DefaultLogger("ERROR") });
  const silent = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(root, "workflows", "index.ts"), logger: silent });
  const nativeConnection = await NativeConnection.connect({ address });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  try {
    const chosen = scenarios().filter((s) => !only.length || only.includes(s.name));
    if (only.length && chosen.length !== only.length) throw new Error(`unknown scenario(s): ${only.filter((n) => !chosen.some((s) => s.name === n)).join(", ")}`);
    for (const s of chosen) {
      const taskQueue = `record-histories-${randomUUID()}`;
      const worker = await Worker.create({ connection: nativeConnection, namespace, taskQueue, workflowBundle: { code }, activities: s.activities, maxHeartbeatThrottleInterval: "1 second" });
      const workflowId = `history-${s.name}-${randomUUID()}`;
      await worker.runUntil(async () => {
        const handle = await client.workflow.start(s.workflowType, { taskQueue, workflowId, args: s.args, workflowExecutionTimeout: "5 minutes" });
        if (s.drive) await s.drive(handle, Promise.resolve());
        else await handle.result();
      });
      const write = async (name: string, id: string) => {
        const history = await client.workflow.getHandle(id).fetchHistory();
        fs.writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), `${JSON.stringify(historyToJson(history), null, 1)}\n`);
        console.log(`recorded ${name} (${history.events?.length ?? 0} events)`);
      };
      await write(s.name, workflowId);
      for (const suffix of s.children ?? []) await write(`${s.name}${suffix}`, `${workflowId}${suffix}`);
    }
  } finally {
    await connection.close();
    await nativeConnection.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
