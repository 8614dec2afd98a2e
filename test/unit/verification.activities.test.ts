import { describe, expect, it } from "vitest";
import { ApplicationFailure, CancelledFailure } from "@temporalio/common";
import { createVerificationActivities, verificationTargetId, type VerificationActivityDeps } from "../../src/verification/verification.activities";
import { MissingChunkError, type ComposeRequest } from "../../src/storage/image-store";
import { TargetError } from "../../src/compute/target";
import type { ComposedImage } from "../../workflows/contracts";
import { FakeTarget } from "../helpers/fake-target";
import { activityEnv as envFor, rejectionOf, runActivity as run } from "../helpers/activity-env";

/**
 * The verification's activities under MockActivityEnvironment, over in-memory fakes of the narrow
 * dependencies (the local target, the image store, the verification record).
 */


type Patch = Parameters<VerificationActivityDeps["verifications"]["update"]>[1];

/** `local: null`: a worker without the local target. */
function setup(local: FakeTarget | null = new FakeTarget("LOCAL")) {
  const updates: { id: string; patch: Patch }[] = [];
  const objects = new Set<string>();
  const requests: ComposeRequest[] = [];
  const aborted: string[] = [];
  let composeError: Error | undefined;
  const deps: VerificationActivityDeps = {
    local: local ?? undefined,
    images: {
      async abortComposition(key) {
        aborted.push(key);
      },
      async compose(req) {
        requests.push(req);
        if (composeError) throw composeError;
        req.onCheckpoint?.({ uploadId: req.resume?.uploadId ?? "upload-1" });
        req.onProgress?.(1, 1);
        objects.add(req.key);
        return { bucket: "imports", key: req.key, sizeBytes: 1024 * 1024 };
      },
      async delete(key) {
        objects.delete(key);
      },
    },
    artifacts: { put: async () => {} },
    verifications: {
      async update(id, patch) {
        updates.push({ id, patch });
        return null; // the activities do not read the updated row
      },
      async addEvidence() {},
    },
  };
  return {
    acts: createVerificationActivities(deps),
    updates,
    objects,
    requests,
    aborted,
    failCompose: (e: Error) => {
      composeError = e;
    },
  };
}

const image: ComposedImage = { bucket: "imports", key: "u1/verifications/v1.raw", sizeBytes: 1024 * 1024 };

describe("verification activities (MockActivityEnvironment, in-memory dependencies)", () => {
  it("verificationStarted marks the verification RUNNING only when the local target can work", async () => {
    const target = new FakeTarget("LOCAL");
    const { acts, updates } = setup(target);
    target.failWith.checkAvailable = new TargetError("qemu-system-x86_64 is not installed", false, "QemuMissing");

    const err = await rejectionOf(run(envFor(), acts.verificationStarted, { verificationId: "v1" }));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: "QemuMissing", nonRetryable: true, message: "qemu-system-x86_64 is not installed" });
    expect(updates).toEqual([]);

    delete target.failWith.checkAvailable;
    await run(envFor(), acts.verificationStarted, { verificationId: "v1" });
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({ id: "v1", patch: { status: "RUNNING" } });
    expect(updates[0]?.patch.startedAt).toBeInstanceOf(Date);
  });

  it("a worker without the local target fails every step as TargetNotConfigured (not retried)", async () => {
    const { acts, updates } = setup(null);

    const err = await rejectionOf(run(envFor(), acts.verificationStarted, { verificationId: "v1" }));

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: "TargetNotConfigured", nonRetryable: true });
    expect(updates).toEqual([]);
  });

  it("composeForVerification composes under the verification's key, resumes a retried attempt and refuses a missing chunk", async () => {
    const { acts, objects, requests, failCompose } = setup();

    const composed = await run(envFor({ attempt: 2, heartbeatDetails: { uploadId: "upload-earlier" } }), acts.composeForVerification, { verificationId: "v1", userId: "u1", backupId: "b1" });
    expect(composed.key).toBe("u1/verifications/v1.raw");
    expect(objects.has("u1/verifications/v1.raw")).toBe(true);
    expect(requests[0]).toMatchObject({ userId: "u1", backupId: "b1", resume: { uploadId: "upload-earlier" } });

    failCompose(new MissingChunkError("manifest of b1 is missing"));
    const err = await rejectionOf(run(envFor(), acts.composeForVerification, { verificationId: "v1", userId: "u1", backupId: "b1" }));
    expect(err).toMatchObject({ type: "MissingChunk", nonRetryable: true, message: "manifest of b1 is missing" });
  });

  it("importForVerification imports under the verification's target id and fails while the import is not complete", async () => {
    const target = new FakeTarget("LOCAL");
    target.importStatus = { state: "completed", progress: 100, imageId: "base-verify-v1" };
    const { acts } = setup(target);

    expect(await run(envFor(), acts.importForVerification, { verificationId: "v1", image })).toEqual({ imageId: "base-verify-v1" });
    expect(target.calls).toContain(`startImport:${verificationTargetId("v1")}`);
    expect(verificationTargetId("v1")).toBe("verify-v1");

    target.importStatus = { state: "active", progress: 50, message: "copying" };
    const err = await rejectionOf(run(envFor(), acts.importForVerification, { verificationId: "v1", image }));
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ApplicationFailure); // left to the retry policy
    expect((err as Error).message).toBe("import import-verify-v1 is active: copying");
  });

  it("launchIsolated launches an isolated machine reachable only from loopback, on the declared ports", async () => {
    const target = new FakeTarget("LOCAL");
    const launches: unknown[] = [];
    const launch = target.launch.bind(target);
    target.launch = async (req) => {
      launches.push(req);
      return launch(req);
    };
    const { acts } = setup(target);

    const before = Date.now();
    const launched = await run(envFor(), acts.launchIsolated, { verificationId: "v1234567890", userId: "u1", imageId: "base-1", ports: [22] });

    expect(launched.instanceId).toBe("i-verify-v1234567890");
    expect(launched.launchedAtMs).toBeGreaterThanOrEqual(before);
    expect(launches).toEqual([{ idempotencyKey: "verify-v1234567890", userId: "u1", imageId: "base-1", name: "verify-v1234567", allowedCidr: "127.0.0.1/32", isolated: true, ports: [22] }]);
  });

  it("launchIsolated keeps the target's own launch time (the boot time counts from when the machine started, not from the answer)", async () => {
    const target = new FakeTarget("LOCAL");
    const launch = target.launch.bind(target);
    const startedAtMs = Date.now() - 4_000;
    target.launch = async (req) => ({ ...(await launch(req)), launchedAtMs: startedAtMs });
    const { acts } = setup(target);
    const launched = await run(envFor(), acts.launchIsolated, { verificationId: "v1234567890", userId: "u1", imageId: "base-1", ports: [22] });
    expect(launched.launchedAtMs).toBe(startedAtMs);
  });

  it("launchIsolated cancelled while the launch runs ends as cancelled once the launch returns (cleanup finds the machine by name)", async () => {
    const target = new FakeTarget("LOCAL");
    const env = envFor();
    const launch = target.launch.bind(target);
    target.launch = async (req) => {
      env.cancel();
      return launch(req);
    };
    const { acts } = setup(target);

    const err = await rejectionOf(run(env, acts.launchIsolated, { verificationId: "v1", userId: "u1", imageId: "base-1" }));

    expect(err).toBeInstanceOf(CancelledFailure);
    expect(target.instances.size).toBe(1);
  });

  it("cleanupVerification removes the machine, its image and the composed object; without an image id it discards the import by name", async () => {
    const target = new FakeTarget("LOCAL");
    const { acts, objects } = setup(target);
    const env = envFor();
    const composed = await run(env, acts.composeForVerification, { verificationId: "v1", userId: "u1", backupId: "b1" });
    const { imageId } = await run(env, acts.importForVerification, { verificationId: "v1", image: composed });
    const { instanceId } = await run(env, acts.launchIsolated, { verificationId: "v1", userId: "u1", imageId });
    expect([target.instances.size, target.images.size, objects.size]).toEqual([1, 1, 1]);

    await run(env, acts.cleanupVerification, { verificationId: "v1", instanceId, imageId, composedKey: composed.key });
    expect([target.instances.size, target.images.size, objects.size]).toEqual([0, 0, 0]);
    expect(target.calls).not.toContain("discardImport:verify-v1");

    // Cancelled mid-import: only the verification id is known.
    await run(env, acts.importForVerification, { verificationId: "v2", image });
    expect(target.imports.size).toBe(2);
    await run(env, acts.cleanupVerification, { verificationId: "v2" });
    expect(target.calls).toContain("discardImport:verify-v2");
    expect([...target.imports.values()]).toEqual(["verify-v1"]);
  });

  it("importForVerification hears a cancel within about a second (it heartbeats on a timer) and stops the import", async () => {
    const target = new FakeTarget("LOCAL");
    target.importRunsUntilAborted = true;
    target.importReportsProgress = false;
    const { acts } = setup(target);
    const env = envFor();
    let beats = 0;
    env.on("heartbeat", () => {
      if (++beats === 2) env.cancel();
    });
    const err = await rejectionOf(run(env, acts.importForVerification, { verificationId: "v1", image }));
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(beats).toBe(2);
    expect(target.imports.size).toBe(0);
  });

  it("cleanupVerification without a composed key (a composition cut short) finds it by the derived key", async () => {
    const { acts, objects, aborted } = setup(new FakeTarget("LOCAL"));
    objects.add("u1/verifications/v3.raw");
    await run(envFor(), acts.cleanupVerification, { verificationId: "v3", userId: "u1" });
    expect(aborted).toEqual(["u1/verifications/v3.raw"]);
    expect(objects.size).toBe(0);
  });

  it("finishVerification stores the verdict and clears what does not apply", async () => {
    const { acts, updates } = setup();

    await run(envFor(), acts.finishVerification, { verificationId: "v1", status: "INCONCLUSIVE", failureReason: "nothing on screen within 60 s" });

    expect(updates).toHaveLength(1);
    expect(updates[0]?.patch).toMatchObject({ status: "INCONCLUSIVE", bootSeconds: null, failureReason: "nothing on screen within 60 s" });
    expect(updates[0]?.patch.checkedAt).toBeInstanceOf(Date);
  });
});
