import { ActivityCancellationType, CancellationScope, isCancellation, patched, proxyActivities } from "@temporalio/workflow";
import type { VerificationActivities, VerificationCleanup, VerificationWorkflowInput, VerifyBackupResult } from "./contracts";
import { reasonOf, retryPolicy } from "./policies";

/**
 * Proves a restore point boots: recover it to the local target in isolation (the guest reaches
 * nothing; only loopback forwards to its declared ports), collect boot evidence (firmware log, OCR'd
 * screen, service banners, serial marker), record VERIFIED, FAILED or INCONCLUSIVE with the evidence,
 * and always remove the machine, its image and the composed object before the result is recorded.
 */
export async function verifyBackupWorkflow(input: VerificationWorkflowInput): Promise<VerifyBackupResult> {
  // On cancellation the workflow waits until the running step has stopped (and removed what it was
  // writing) before it cleans up, as recoveries do. Runs started before this replay as they ran.
  const waitForCancelledStep = patched("verification-waits-for-cancelled-step");
  const long = proxyActivities<VerificationActivities>({
    startToCloseTimeout: `${input.bootTimeoutMs + 3_600_000} milliseconds`,
    heartbeatTimeout: `${input.heartbeatTimeoutMs} milliseconds`,
    retry: retryPolicy(5),
    ...(waitForCancelledStep ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}),
  });
  const quick = proxyActivities<VerificationActivities>({
    startToCloseTimeout: "5 minutes",
    retry: retryPolicy(20),
  });
  const made: VerificationCleanup = { verificationId: input.verificationId, userId: input.userId };
  let result: VerifyBackupResult;
  let cancelled: unknown;
  try {
    await quick.verificationStarted({ verificationId: input.verificationId });
    const image = await long.composeForVerification({ verificationId: input.verificationId, userId: input.userId, backupId: input.backupId });
    made.composedKey = image.key;
    const { imageId } = await long.importForVerification({ verificationId: input.verificationId, image });
    made.imageId = imageId;
    // The instance id is deterministic, so cleanup knows it even if launch fails half-way.
    made.instanceId = `vm-verify-${input.verificationId}`;
    const { instanceId, launchedAtMs } = await long.launchIsolated({ verificationId: input.verificationId, userId: input.userId, imageId, ports: input.ports });
    made.instanceId = instanceId;
    const outcome = await long.awaitBootEvidence({
      verificationId: input.verificationId,
      userId: input.userId,
      instanceId,
      launchedAtMs,
      bootMarker: input.bootMarker,
      ports: input.ports,
      graceMs: input.graceMs,
      bootTimeoutMs: input.bootTimeoutMs,
      pollIntervalMs: input.pollIntervalMs,
    });
    result = { status: outcome.verdict, bootSeconds: outcome.bootSeconds, failureReason: outcome.reason };
  } catch (err) {
    if (isCancellation(err)) cancelled = err;
    result = { status: "FAILED", failureReason: cancelled ? "Cancelled" : reasonOf(err) };
  }
  await CancellationScope.nonCancellable(async () => {
    await quick.cleanupVerification(made);
    await quick.finishVerification({ verificationId: input.verificationId, ...result });
  });
  if (cancelled) throw cancelled;
  return result;
}
