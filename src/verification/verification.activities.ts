import { Context, ApplicationFailure } from "@temporalio/activity";
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { ChunkStore } from "../storage/chunk-store";
import { composeRestorePoint, MissingChunkError, type ComposeCheckpoint } from "../recoveries/compose";
import { callTarget } from "../recoveries/targets/call";
import type { ComputeTarget, ComposedImage } from "../recoveries/targets/target";
import type { VerificationService } from "./verification.service";
import { inspectPng } from "./png";

export interface VerificationActivityDeps {
  s3: S3Client;
  store: ChunkStore;
  importsBucket: string;
  artifactsBucket: string;
  verifications: VerificationService;
  /** Boot verification always runs on the local target. */
  local?: ComputeTarget;
}

export interface BootEvidence {
  bootSeconds: number;
  screenshotKey: string;
}

/** Name under which the local target keeps a verification's image and machine. */
export const verificationTargetId = (verificationId: string) => `verify-${verificationId}`;


export function createVerificationActivities(deps: VerificationActivityDeps) {
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
        return await composeRestorePoint({
          s3: deps.s3,
          store: deps.store,
          importsBucket: deps.importsBucket,
          userId: input.userId,
          backupId: input.backupId,
          key: `${input.userId}/verifications/${input.verificationId}.raw`,
          resume: checkpoint,
          signal: Context.current().cancellationSignal,
          onCheckpoint: (c) => {
            checkpoint = c;
            heartbeat(c);
          },
          onProgress: () => heartbeat(checkpoint),
        });
      } catch (err) {
        if (err instanceof MissingChunkError) throw ApplicationFailure.nonRetryable(err.message, "MissingChunk");
        throw err;
      }
    },

    async importForVerification(input: { verificationId: string; image: ComposedImage }): Promise<{ imageId: string }> {
      const { importTaskId } = await callTarget(() => local().startImport(verificationTargetId(input.verificationId), input.image, () => heartbeat()));
      const status = await callTarget(() => local().describeImport(importTaskId));
      if (status.state !== "completed" || !status.imageId) throw new Error(`import ${importTaskId} is ${status.state}: ${status.message ?? ""}`);
      return { imageId: status.imageId };
    },

    async launchIsolated(input: { verificationId: string; userId: string; imageId: string }): Promise<{ instanceId: string; launchedAtMs: number }> {
      const launched = await callTarget(() =>
        local().launch({ recoveryId: verificationTargetId(input.verificationId), userId: input.userId, imageId: input.imageId, name: `verify-${input.verificationId.slice(0, 8)}`, allowedCidr: "127.0.0.1/32", isolated: true }),
      );
      return { instanceId: launched.instanceId, launchedAtMs: Date.now() };
    },

    /**
     * Watches the isolated machine: the boot marker on the serial console (when configured), then a
     * screenshot once `screenshotAfterMs` have passed since launch. The PNG is stored either way, so
     * support can see what a failed boot showed.
     */
    async awaitBootEvidence(input: {
      verificationId: string;
      userId: string;
      instanceId: string;
      launchedAtMs: number;
      bootMarker?: string;
      screenshotAfterMs: number;
      bootTimeoutMs: number;
      pollIntervalMs: number;
    }): Promise<BootEvidence> {
      const target = local();
      const key = `${input.userId}/verifications/${input.verificationId}.png`;
      const store = async () => {
        const png = await callTarget(() => target.screenshot(input.instanceId));
        await deps.s3.send(new PutObjectCommand({ Bucket: deps.artifactsBucket, Key: key, Body: png, ContentType: "image/png" }));
        await deps.verifications.update(input.verificationId, { screenshotKey: key });
        return png;
      };
      let markerAt: number | undefined = input.bootMarker ? undefined : input.launchedAtMs;
      for (;;) {
        const now = Date.now();
        heartbeat();
        const status = await callTarget(() => target.describeInstance(input.instanceId));
        if (status.state !== "running" && status.state !== "pending") {
          throw ApplicationFailure.nonRetryable(`The machine stopped during boot (${status.state})`, "BootFailed");
        }
        if (markerAt === undefined && (await callTarget(() => target.consoleOutput(input.instanceId))).includes(input.bootMarker!)) markerAt = Date.now();
        if (markerAt !== undefined && now - input.launchedAtMs >= input.screenshotAfterMs) {
          const png = await store();
          if (!input.bootMarker && inspectPng(png).uniform) throw ApplicationFailure.nonRetryable("The screen stayed blank: no boot evidence", "BootFailed");
          const evidenceAt = input.bootMarker ? markerAt : Date.now();
          return { bootSeconds: Math.round((evidenceAt - input.launchedAtMs) / 10) / 100, screenshotKey: key };
        }
        if (now - input.launchedAtMs > input.bootTimeoutMs) {
          await store().catch(() => undefined);
          throw ApplicationFailure.nonRetryable(`Boot marker "${input.bootMarker}" not seen on the serial console within ${Math.round(input.bootTimeoutMs / 1000)} s`, "BootFailed");
        }
        await Context.current().sleep(input.pollIntervalMs);
      }
    },

    /** Always runs: terminates the machine, deletes its image and the composed object. */
    async cleanupVerification(input: { instanceId?: string; imageId?: string; composedKey?: string }): Promise<void> {
      const target = deps.local;
      if (target && input.instanceId) await callTarget(() => target.terminateInstance(input.instanceId!));
      if (target && input.imageId) await callTarget(() => target.deleteImage(input.imageId!));
      if (input.composedKey) await deps.s3.send(new DeleteObjectCommand({ Bucket: deps.importsBucket, Key: input.composedKey }));
    },

    async finishVerification(input: { verificationId: string; status: "VERIFIED" | "FAILED"; bootSeconds?: number; failureReason?: string }): Promise<void> {
      await deps.verifications.update(input.verificationId, {
        status: input.status,
        bootSeconds: input.bootSeconds ?? null,
        failureReason: input.failureReason ?? null,
        checkedAt: new Date(),
      });
    },
  };
}

export type VerificationActivities = ReturnType<typeof createVerificationActivities>;
