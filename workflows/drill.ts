import { CancellationScope, ChildWorkflowCancellationType, ParentClosePolicy, executeChild, isCancellation, proxyActivities, sleep, workflowInfo } from "@temporalio/workflow";
import type { DrillActivities, DrillInput, DrillResult, VerifyBackupResult } from "./contracts";
import { reasonOf, retryPolicy } from "./policies";
import { verifyBackupWorkflow } from "./verification";

/**
 * A drill: recover the source's latest restore point in isolation and prove it boots, by running
 * the boot verification as a child workflow (there is one boot pipeline), then record the verdict,
 * the evidence and the RTO (drill start → first positive boot signal).
 *
 * Cleanup is the verification's: on failure it cleans up itself; a drill that is cancelled or
 * reaches its time limit cancels the child and waits until the child has removed everything
 * (WAIT_CANCELLATION_COMPLETED); if the drill itself is terminated or hits its hard timeout, the
 * child is asked to cancel (ParentClosePolicy.REQUEST_CANCEL), never abandoned.
 */
export async function drillWorkflow(input: DrillInput): Promise<DrillResult> {
  const acts = proxyActivities<DrillActivities>({
    startToCloseTimeout: "5 minutes",
    retry: retryPolicy(20),
  });
  const info = workflowInfo();
  const startedAtMs = info.runStartTime.getTime();
  const begun = await acts.beginDrill({ userId: input.userId, sourceName: input.sourceName, trigger: input.trigger, workflowId: info.workflowId, startedAtMs });
  if (begun.skipped) return { status: "SKIPPED", reason: begun.skipped };
  if (!begun.verification) {
    const done = await acts.finishDrill({ drillId: begun.drillId, status: "FAILED", reason: begun.failure });
    return { drillId: begun.drillId, ...done };
  }
  const verification = begun.verification;

  let result: VerifyBackupResult | undefined;
  let timedOut = false;
  let cancelled: unknown;
  let failure: string | undefined;
  const run = new CancellationScope();
  const limit = new CancellationScope();
  const child = run.run(() =>
    executeChild(verifyBackupWorkflow, {
      workflowId: verification.workflowId,
      args: [verification.args],
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
      workflowExecutionTimeout: verification.executionTimeoutMs,
    }),
  );
  const remaining = Math.max(1, input.timeLimitMs - (Date.now() - startedAtMs));
  void limit
    .run(() => sleep(remaining))
    .then(
      () => {
        timedOut = true;
        run.cancel();
      },
      () => undefined,
    );
  try {
    result = await child;
  } catch (err) {
    if (timedOut) failure = `The drill reached its time limit (${Math.round(input.timeLimitMs / 1000)} s) and was stopped; everything it created was removed`;
    else if (isCancellation(err)) cancelled = err;
    else failure = reasonOf(err);
  } finally {
    limit.cancel();
  }

  const done = await CancellationScope.nonCancellable(() =>
    acts.finishDrill({
      drillId: begun.drillId,
      status: cancelled ? "CANCELLED" : result ? result.status : "FAILED",
      reason: cancelled ? "Cancelled" : (failure ?? result?.failureReason),
    }),
  );
  if (cancelled) throw cancelled;
  return { drillId: begun.drillId, ...done };
}
