import { Context, ApplicationFailure } from "@temporalio/activity";
import type { ArtifactStore } from "../storage/artifact-store";
import { MissingChunkError, type ComposeCheckpoint, type ImageStore } from "../storage/image-store";
import { callTarget } from "../compute/call";
import { cancellable, heartbeating } from "../recoveries/heartbeat";
import { SCREENSHOT_EXTENSION, type ComputeTarget, type ComposedImage } from "../compute/target";
import type { VerificationService } from "./verification.service";
import type { AwaitBootEvidenceInput, BootEvidenceOutcome, BootVerdict, VerificationActivities, VerificationCleanup } from "../../workflows/contracts";
import { collectBootEvidence, probeFor } from "../evidence";

export interface VerificationActivityDeps {
  /** Composes the restore point into the image the local target imports (and removes it again). */
  images: Pick<ImageStore, "compose" | "abortComposition" | "delete">;
  /** Where the screenshot the check saw is kept. */
  artifacts: Pick<ArtifactStore, "put">;
  /** Records the verification's state and evidence (and publishes them). */
  verifications: Pick<VerificationService, "update" | "addEvidence">;
  /** Boot verification always runs on the local target. */
  local?: ComputeTarget;
  /** OCR binary for screenshots (default "tesseract"). */
  tesseract?: string;
}

/** Name under which the local target keeps a verification's image and machine. */
export const verificationTargetId = (verificationId: string) => `verify-${verificationId}`;

/** Where a verification's restore point is composed (derived, so cleanup finds a half-done one). */
const composedKeyOf = (userId: string, verificationId: string) => `${userId}/verifications/${verificationId}.raw`;

export function createVerificationActivities(deps: VerificationActivityDeps): VerificationActivities {
  const local = (): ComputeTarget => {
    if (!deps.local) throw ApplicationFailure.nonRetryable("The local target is not available on this worker", "TargetNotConfigured");
    return deps.local;
  };
  const heartbeat = (d?: unknown) => Context.current().heartbeat(d);

  return {
    async verificationStarted(input: { verificationId: string }): Promise<void> {
      await callTarget(() => local().checkAvailable());
      await deps.verifications.update(input.verificationId, { status: "RUNNING", startedAt: new Date() });
    },

    async composeForVerification(input: { verificationId: string; userId: string; backupId: string }): Promise<ComposedImage> {
      let checkpoint = Context.current().info.heartbeatDetails as ComposeCheckpoint | undefined;
      try {
        return await heartbeating(
          () =>
            cancellable(`composition for verification ${input.verificationId}`, (signal) =>
              deps.images.compose({
                userId: input.userId,
                backupId: input.backupId,
                key: composedKeyOf(input.userId, input.verificationId),
                resume: checkpoint,
                signal,
                onCheckpoint: (c) => {
                  checkpoint = c;
                  heartbeat(c);
                },
              }),
            ),
          () => checkpoint,
        );
      } catch (err) {
        if (err instanceof MissingChunkError) throw ApplicationFailure.nonRetryable(err.message, "MissingChunk");
        throw err;
      }
    },

    async importForVerification(input: { verificationId: string; image: ComposedImage }): Promise<{ imageId: string }> {
      // Heartbeats on a timer and passes the cancellation on: a cancelled verification stops its
      // import within about a second, and the import removes what it wrote before this rejects.
      const { importTaskId } = await heartbeating(() =>
        cancellable(`import for verification ${input.verificationId}`, (signal) => callTarget(() => local().startImport(verificationTargetId(input.verificationId), input.image, undefined, signal))),
      );
      const status = await callTarget(() => local().describeImport(importTaskId));
      if (status.state !== "completed" || !status.imageId) throw new Error(`import ${importTaskId} is ${status.state}: ${status.message ?? ""}`);
      return { imageId: status.imageId };
    },

    async launchIsolated(input: { verificationId: string; userId: string; imageId: string; ports?: number[] }): Promise<{ instanceId: string; launchedAtMs: number }> {
      // The launch cannot be stopped halfway: a cancel that landed during it ends the step as
      // cancelled once it returns (cleanup finds the machine by the verification's name).
      const launched = await heartbeating(() =>
        cancellable(`launch for verification ${input.verificationId}`, () =>
          callTarget(() =>
            local().launch({
              idempotencyKey: verificationTargetId(input.verificationId),
              userId: input.userId,
              imageId: input.imageId,
              name: `verify-${input.verificationId.slice(0, 8)}`,
              allowedCidr: "127.0.0.1/32",
              isolated: true,
              // Loopback forwards so the services' banners can be read; the guest still reaches nothing.
              ports: input.ports,
            }),
          ),
        ),
      );
      // The target's own launch time (local: when QEMU started; AWS: LaunchTime): the boot time is
      // counted from it, not from when this step got the answer.
      return { instanceId: launched.instanceId, launchedAtMs: launched.launchedAtMs ?? Date.now() };
    },

    /**
     * Watches the isolated machine and collects boot evidence (firmware log, OCR'd screen, service
     * banners on the declared ports, the serial marker) until the verdict is clear. Each piece is
     * persisted and published as it is seen; the last screenshot is stored whatever the verdict,
     * so the user sees what the check saw.
     */
    async awaitBootEvidence(input: AwaitBootEvidenceInput): Promise<BootEvidenceOutcome> {
      const target = local();
      // Start from a clean record (a retried attempt re-collects everything).
      await deps.verifications.update(input.verificationId, { evidence: [] });
      const result = await heartbeating(() =>
        // A cancelled collection ends as cancelled (the workflow then reports the cancel or the
        // drill's time limit), not as a failed boot check.
        cancellable(`boot check of verification ${input.verificationId}`, (signal) =>
          collectBootEvidence(probeFor(target, input.instanceId), {
            launchedAtMs: input.launchedAtMs,
            timeoutMs: input.bootTimeoutMs,
            pollIntervalMs: input.pollIntervalMs,
            ports: input.ports,
            bootMarker: input.bootMarker,
            graceMs: input.graceMs,
            tesseract: deps.tesseract,
            signal,
            onEvidence: (e) => deps.verifications.addEvidence(input.verificationId, e),
          }),
        ),
      );
      const shot = result.screenshot;
      const key = shot ? `${input.userId}/verifications/${input.verificationId}.${SCREENSHOT_EXTENSION[shot.contentType]}` : null;
      if (shot && key) {
        await deps.artifacts.put(key, shot.bytes, shot.contentType);
      }
      await deps.verifications.update(input.verificationId, { screenshotKey: key, screenText: result.screenText?.slice(0, 16_000) ?? null });
      return { verdict: result.verdict, bootSeconds: result.bootSeconds, reason: result.reason };
    },

    /** Always runs: terminates the machine, deletes its image and the composed object. */
    async cleanupVerification(input: VerificationCleanup): Promise<void> {
      const target = deps.local;
      if (target && input.instanceId) await callTarget(() => target.terminateInstance(input.instanceId!));
      // No recorded instance: a launch cut short by the cancel is found by the verification's name.
      else if (target && input.verificationId && target.discardLaunch) await callTarget(() => target.discardLaunch!(verificationTargetId(input.verificationId!)));
      if (target && input.imageId) await callTarget(() => target.deleteImage(input.imageId!));
      // No recorded image id: the import may still run, or may have finished as the verification was
      // cancelled; the target finds it by the verification's name and removes it.
      else if (target && input.verificationId) await callTarget(() => target.discardImport(verificationTargetId(input.verificationId!)));
      // A composition cancelled halfway never told its key, and leaves its multipart upload open:
      // both are found by the derived key.
      const composedKey = input.composedKey ?? (input.userId && input.verificationId ? composedKeyOf(input.userId, input.verificationId) : undefined);
      if (composedKey) {
        await deps.images.abortComposition(composedKey);
        await deps.images.delete(composedKey);
      }
    },

    async finishVerification(input: { verificationId: string; status: BootVerdict; bootSeconds?: number; failureReason?: string }): Promise<void> {
      await deps.verifications.update(input.verificationId, { status: input.status, bootSeconds: input.bootSeconds ?? null, failureReason: input.failureReason ?? null, checkedAt: new Date() });
    },
  };
}
