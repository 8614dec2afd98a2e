import { ActivityFailure, CancellationScope, isCancellation, proxyActivities } from "@temporalio/workflow";
import type { VerificationActivities } from "../src/verification/verification.activities";

/** The verification workflow's arguments (not the GraphQL `VerifyBackupInput`, which is what a user asks for). */
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
  status: "VERIFIED" | "FAILED" | "INCONCLUSIVE";
  bootSeconds?: number;
  failureReason?: string;
}

function reasonOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Proves a restore point boots: recover it to the local target in isolation (the guest reaches
 * nothing; only loopback forwards to its declared ports), collect boot evidence (firmware log, OCR'd
 * screen, service banners, serial marker), record VERIFIED, FAILED or INCONCLUSIVE with the evidence,
 * and always remove the machine, its image and the composed object before the result is recorded.
 */
export async function verifyBackupWorkflow(input: VerificationWorkflowInput): Promise<VerifyBackupResult> {
  const long = proxyActivities<VerificationActivities>({
    startToCloseTimeout: `${input.bootTimeoutMs + 3_600_000} milliseconds`,
    heartbeatTimeout: `${input.heartbeatTimeoutMs} milliseconds`,
    retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute", maximumAttempts: 5 },
  });
  const quick = proxyActivities<VerificationActivities>({
    startToCloseTimeout: "5 minutes",
    retry: { initialInterval: "1 second", backoffCoefficient: 2, maximumInterval: "1 minute", maximumAttempts: 20 },
  });
  const made: { verificationId: string; instanceId?: string; imageId?: string; composedKey?: string } = { verificationId: input.verificationId };
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
