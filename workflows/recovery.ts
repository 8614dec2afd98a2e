import { ActivityCancellationType, CancellationScope, isCancellation, patched, proxyActivities, sleep, workflowInfo } from "@temporalio/workflow";
import type { ReconcileActivities, ReconcileResult, RecoveryActivities, RecoveryCleanup, RecoveryOutcome, RecoveryWorkflowInput, StaleInstanceActivities } from "./contracts";
import { reasonOf, retryPolicy } from "./policies";

/** Declared ports of a run that names none: SSH, RDP, SMB. */
const DEFAULT_PORTS = [22, 3389, 445];

/**
 * One recovery, durably: PREPARING (compose the restore point server-side) → IMPORTING → LAUNCHING
 * → CHECKING (evidence that the machine started) → COMPLETED. A machine that fails its check (or
 * shows nothing before the check's timeout) is still COMPLETED, with bootCheck FAILED/INCONCLUSIVE,
 * its evidence and a message that says so: the machine is kept for the customer to look at. On failure, cancellation or the time limit, everything created so far is removed in
 * a non-cancellable scope before the recovery is marked FAILED (reason TIMED_OUT on the limit) or
 * CANCELLED. Every step is idempotent, so replay after a worker or API crash never duplicates work.
 */
export async function recoveryWorkflow(input: RecoveryWorkflowInput): Promise<RecoveryOutcome> {
  const hb = `${input.heartbeatTimeoutMs} milliseconds`;
  // Short database/S3 calls: a worker that dies during one is noticed after this timeout.
  const quick = proxyActivities<RecoveryActivities>({
    startToCloseTimeout: `${Math.max(10_000, 2 * input.heartbeatTimeoutMs)} milliseconds`,
    retry: retryPolicy(10),
  });
  // Long steps: on cancellation the workflow waits until the activity has stopped (and removed what
  // it was writing) before it cleans up, so CANCELLED means nothing is left.
  // The time limit is the workflow's timer, not this timeout: were they equal, the server could time
  // an attempt out just before the timer's cancel reached it, retry it, and the cancel would then find
  // only the waiting retry — cleanup would run while the timed-out attempt was still working. The
  // start-to-close timeout is a backstop after the limit; a dead worker is noticed by the heartbeat.
  const backstop = `${input.timeLimitMs + Math.max(60_000, 2 * input.heartbeatTimeoutMs)} milliseconds`;
  const long = { startToCloseTimeout: backstop, heartbeatTimeout: hb, retry: retryPolicy(8), cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };
  const compose = proxyActivities<RecoveryActivities>(long);
  const target = proxyActivities<RecoveryActivities>(long);
  const cleanup = proxyActivities<RecoveryActivities>({ startToCloseTimeout: "30 minutes", heartbeatTimeout: "5 minutes", retry: retryPolicy(30) });

  const started = workflowInfo().startTime.getTime();
  const resources: RecoveryCleanup = { recoveryId: input.recoveryId, userId: input.userId, target: input.target };
  let timedOut = false;

  const main = new CancellationScope();
  // The limit is exact and measured from the start: a durable timer that cancels the main scope.
  const limitTimer = CancellationScope.cancellable(async () => {
    await sleep(input.timeLimitMs);
    timedOut = true;
    main.cancel();
  });
  limitTimer.catch(() => {}); // cancelled when the recovery ends first

  try {
    const outcome = await main.run(async () => {
      await quick.beginRecovery({ recoveryId: input.recoveryId, deadlineAt: started + input.timeLimitMs });
      const image = await compose.composeImage({ recoveryId: input.recoveryId, userId: input.userId, backupId: input.backupId });
      resources.composedKey = image.key;
      resources.composeUploadId = image.uploadId;
      const { importTaskId, attempt: importAttempt } = await target.startImport({ recoveryId: input.recoveryId, target: input.target, image });
      resources.importTaskId = importTaskId;
      // The step's second half numbers its timeline entries on from the first half's attempt.
      const imported = await target.waitForImport({ recoveryId: input.recoveryId, target: input.target, importTaskId, pollIntervalMs: input.pollIntervalMs, stepAttempt: importAttempt });
      resources.imageId = imported.imageId;
      resources.snapshotIds = imported.snapshotIds;
      const launched = await target.launchInstance({
        recoveryId: input.recoveryId,
        userId: input.userId,
        target: input.target,
        imageId: imported.imageId,
        name: input.name,
        allowedCidr: input.allowedCidr,
        isolated: input.isolated,
        allowInternet: input.allowInternet,
        ...(input.ports ? { ports: input.ports } : {}),
      });
      resources.instanceId = launched.instanceId;
      resources.securityGroupId = launched.securityGroupId;
      // launchedAtMs: the provider's "not found" shortly after the launch means "not visible yet" on
      // whichever worker polls. An activity's input is not part of replay: runs in flight need no patch.
      const status = await target.waitForInstance({
        recoveryId: input.recoveryId,
        target: input.target,
        instanceId: launched.instanceId,
        pollIntervalMs: input.pollIntervalMs,
        launchedAtMs: launched.launchedAtMs,
        stepAttempt: launched.attempt,
      });
      // The machine runs: its WireGuard access point opens (the only way in for its users). Runs
      // started before private access replay without it; an isolated machine is offered to nobody.
      const access =
        !input.isolated && patched("private-access")
          ? await target.openAccessPoint({
              recoveryId: input.recoveryId,
              userId: input.userId,
              target: input.target,
              instanceId: launched.instanceId,
              ports: input.ports ?? DEFAULT_PORTS,
            })
          : null;
      // Workflows started before the boot check existed replay without it.
      const bootCheck =
        input.bootCheck && patched("boot-check")
          ? await target.checkBoot({
              recoveryId: input.recoveryId,
              userId: input.userId,
              target: input.target,
              instanceId: launched.instanceId,
              launchedAtMs: launched.launchedAtMs,
              ...input.bootCheck,
            })
          : undefined;
      // The image now lives at the target: the composed object goes before the recovery is reported done.
      await quick.deleteComposedImage({ recoveryId: input.recoveryId, key: image.key });
      const instanceRowId = await quick.completeRecovery({ recoveryId: input.recoveryId, userId: input.userId, target: input.target, instanceId: launched.instanceId, name: input.name, status, bootCheck, access });
      return { state: "COMPLETED" as const, instanceRowId, instanceId: launched.instanceId };
    });
    return outcome;
  } catch (err) {
    const cancelled = isCancellation(err);
    const reason = timedOut ? "TIMED_OUT" : cancelled ? "CANCELLED" : reasonOf(err);
    const cleanedUp = await CancellationScope.nonCancellable(async () => {
      const done = await cleanup.cleanupRecovery(resources);
      await quick.failRecovery({
        recoveryId: input.recoveryId,
        state: cancelled && !timedOut ? "CANCELLED" : "FAILED",
        failureReason: reason,
        message: timedOut
          ? `Recovery exceeded its ${Math.round(input.timeLimitMs / 1000)} s limit; everything it created was removed`
          : cancelled
            ? "Recovery cancelled; everything it created was removed"
            : `Recovery failed: ${reason}`,
      });
      return done;
    });
    if (cancelled && !timedOut) throw err; // the workflow itself ends as cancelled
    return { state: "FAILED", reason, cleanedUp };
  }
}

/** Scheduled: active recoveries whose workflow is gone (or closed) are marked FAILED, never left hanging. */
export async function reconcileRecoveries(olderThanMs = 600_000): Promise<ReconcileResult> {
  const acts = proxyActivities<ReconcileActivities>({ startToCloseTimeout: "5 minutes", retry: retryPolicy(5) });
  const stale = await acts.staleActiveRecoveries({ olderThanMs });
  const lost: string[] = [];
  for (const r of stale) {
    const status = await acts.workflowStatus(r.workflowId);
    if (status !== "RUNNING") lost.push(r.id);
  }
  const markedLost = lost.length ? await acts.markLostRecoveries({ recoveryIds: lost, reason: "The recovery's workflow is no longer running; marked failed by the reconciler" }) : 0;
  return { checked: stale.length, markedLost };
}

/** Scheduled daily: terminate instances stopped for longer than the configured time. */
export async function terminateStaleInstances(olderThanMs: number): Promise<string[]> {
  const acts = proxyActivities<StaleInstanceActivities>({ startToCloseTimeout: "30 minutes", retry: retryPolicy(5) });
  return acts.terminateStaleInstances({ olderThanMs });
}
