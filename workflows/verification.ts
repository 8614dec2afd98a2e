import { ActivityFailure, CancellationScope, isCancellation, proxyActivities } from "@temporalio/workflow";
import type { VerificationActivities } from "../src/verification/verification.activities";

export interface VerifyBackupInput {
  verificationId: string;
  userId: string;
  backupId: string;
  bootMarker?: string;
  screenshotAfterMs: number;
  bootTimeoutMs: number;
  pollIntervalMs: number;
  heartbeatTimeoutMs: number;
}

export interface VerifyBackupResult {
  status: "VERIFIED" | "FAILED";
  bootSeconds?: number;
  failureReason?: string;
}

function reasonOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Proves a restore point boots: recover it to the local target with no network forwards, wait for
 * boot evidence (serial marker and/or a screenshot), record VERIFIED or FAILED, and always remove
 * the machine, its image and the composed object before the result is recorded.
 */
export async function verifyBackupWorkflow(input: VerifyBackupInput): Promise<VerifyBackupResult> {
  const long = proxyActivities<VerificationActivities>({
    startToCloseTimeout: `${input.bootTimeoutMs + 3_600_000} milliseconds`,
    heartbeatTimeout: `${input.heartbeatTimeoutMs} milliseconds`,
    retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute", maximumAttempts: 5 },
  });
  const quick = proxyActivities<VerificationActivities>({
    startToCloseTimeout: "5 minutes",
    retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute", maximumAttempts: 20 },
  });
  const made: { instanceId?: string; imageId?: string; composedKey?: string } = {};
  let result: VerifyBackupResult;
  let cancelled: unknown;
  try {
    await quick.verificationStarted({ verificationId: input.verificationId });
    const image = await long.composeForVerification({ verificationId: input.verificationId, userId: input.userId, backupId: input.backupId });
    made.composedKey = image.key;
    const { imageId } = await long.importForVerification({ verificationId: input.verificationId, image });
    made.imageId = imageId;
    const { instanceId, launchedAtMs } = await long.launchIsolated({ verificationId: input.verificationId, userId: input.userId, imageId });
    made.instanceId = instanceId;
    const evidence = await long.awaitBootEvidence({
      verificationId: input.verificationId,
      userId: input.userId,
      instanceId,
      launchedAtMs,
      bootMarker: input.bootMarker,
      screenshotAfterMs: input.screenshotAfterMs,
      bootTimeoutMs: input.bootTimeoutMs,
      pollIntervalMs: input.pollIntervalMs,
    });
    result = { status: "VERIFIED", bootSeconds: evidence.bootSeconds };
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
