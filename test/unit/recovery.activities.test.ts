import { describe, expect, it } from "vitest";
import { ApplicationFailure, CancelledFailure } from "@temporalio/common";
import { createRecoveryActivities, type RecoveryActivityDeps } from "../../src/recoveries/recovery.activities";
import type { BootCheckRecord, InstanceRow, RecoveryResources } from "../../src/db/schema";
import type { NewInstance } from "../../src/instances/instance.service";
import { MissingChunkError, type ComposeRequest } from "../../src/storage/image-store";
import { TargetError } from "../../src/compute/target";
import type { ComposedImage } from "../../workflows/contracts";
import { FakeTarget } from "../helpers/fake-target";
import { generateKeyPair, publicKeyOf } from "../../src/access/wireguard";
import { DescribeInstancesCommand, EC2Client, EC2ServiceException } from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { AwsTarget } from "../../src/compute/aws.target";
import { activityEnv as envFor, rejectionOf, runActivity as run } from "../helpers/activity-env";

/**
 * The recovery's activities under MockActivityEnvironment: real activity code, in-memory fakes of
 * its narrow dependencies (no database, no S3, no QEMU). Each test checks what the activity records
 * on the recovery's timeline, how it turns a target's errors into Temporal failures, how it reacts
 * to cancellation, and what its cleanup removes.
 */


type ProgressDeps = RecoveryActivityDeps["progress"];
type ImageDeps = RecoveryActivityDeps["images"];
type InstanceDeps = RecoveryActivityDeps["instances"];

type Call = { recoveryId: string; step: string; status: string; message: string | null; attempt: number };

/** RecoveryProgress in memory: the timeline, the recorded resources and the final state. */
class FakeProgress implements ProgressDeps {
  readonly events: Call[] = [];
  readonly entered: string[] = [];
  readonly percents: { step: string; percent: number; message?: string }[] = [];
  resources: RecoveryResources = {};
  bootCheck?: BootCheckRecord;
  finished?: { state: string; failureReason?: string; message?: string };
  deadline?: Date;
  created: Date | null = new Date("2026-11-30T00:00:00Z");

  async begin(_recoveryId: string, deadlineAt: Date) {
    this.deadline = deadlineAt;
  }
  async enter(_recoveryId: string, state: string) {
    this.entered.push(state);
  }
  async progress(_recoveryId: string, step: string, percent: number, message?: string) {
    this.percents.push({ step, percent, message });
  }
  async event(recoveryId: string, step: string, status: string, message: string | null, attempt = 1) {
    this.events.push({ recoveryId, step, status, message, attempt });
  }
  async setResources(_recoveryId: string, patch: RecoveryResources) {
    this.resources = { ...this.resources, ...patch };
  }
  async setBootCheck(_recoveryId: string, record: BootCheckRecord) {
    this.bootCheck = record;
  }
  async finish(_recoveryId: string, state: "COMPLETED" | "FAILED" | "CANCELLED", opts: { message?: string; failureReason?: string } = {}) {
    this.finished = { state, ...opts };
    return true;
  }
  async createdAt() {
    return this.created;
  }
  async recordedResources() {
    return this.resources;
  }
}

/** The composed-image store in memory: objects by key, and open multipart uploads. */
class FakeImages implements ImageDeps {
  readonly objects = new Set<string>();
  readonly uploads = new Set<string>();
  readonly requests: ComposeRequest[] = [];
  failWith?: Error;

  async compose(req: ComposeRequest): Promise<ComposedImage> {
    this.requests.push(req);
    if (this.failWith) throw this.failWith;
    const uploadId = req.resume?.uploadId ?? `upload-${req.key}`;
    this.uploads.add(uploadId);
    req.onCheckpoint?.({ uploadId });
    for (let part = 1; part <= 4; part++) req.onProgress?.(part, 4);
    this.uploads.delete(uploadId);
    this.objects.add(req.key);
    return { bucket: "imports", key: req.key, sizeBytes: 4 * 1024 * 1024 };
  }
  async abortComposition(key: string, uploadId?: string) {
    this.uploads.delete(uploadId ?? `upload-${key}`);
  }
  async delete(key: string) {
    this.objects.delete(key);
  }
}

class FakeInstances implements InstanceDeps {
  readonly rows: InstanceRow[] = [];
  readonly terminatedFor: string[] = [];

  async forRecovery(userId: string, recoveryId: string) {
    return this.rows.find((r) => r.userId === userId && r.recoveryId === recoveryId) ?? null;
  }
  async record(userId: string, input: NewInstance) {
    const now = new Date();
    const row: InstanceRow = { id: `row-${this.rows.length + 1}`, userId, address: null, privateAddress: null, zone: null, lastStoppedAt: null, terminatedAt: null, createdAt: now, updatedAt: now, ...input };
    this.rows.push(row);
    return row;
  }
  async markTerminatedForRecovery(recoveryId: string) {
    this.terminatedFor.push(recoveryId);
  }
}

/**
 * The access service's recovery side in memory: one access point per recovery, opened through the
 * target's access port (idempotent), closed through it on cleanup. (AccessService itself, with the
 * database, is tested in test/integration/access.test.ts.)
 */
class FakeAccessService implements AccessDeps {
  readonly opened = new Map<string, { instanceId: string; provider: "AWS" | "LOCAL"; privateKey: string }>();
  constructor(private readonly targets: RecoveryActivityDeps["targets"]) {}

  async open(i: Parameters<AccessDeps["open"]>[0]) {
    const known = this.opened.get(i.recoveryId) ?? { instanceId: i.providerInstanceId, provider: i.provider, privateKey: generateKeyPair().privateKey };
    this.opened.set(i.recoveryId, known);
    const info = await this.targets[i.provider]!.access!.openAccessPoint({
      idempotencyKey: i.recoveryId,
      instanceId: i.providerInstanceId,
      privateKey: known.privateKey,
      tunnelAddress: "100.96.0.1",
      tunnelSubnet: "100.96.0.0/24",
      ports: i.ports,
      peers: [],
    });
    return { endpoint: info.endpoint, publicKey: info.publicKey, resources: info.resources, tunnelAddress: "100.96.0.1", ports: i.ports };
  }
  async closeForRecovery(recoveryId: string) {
    const known = this.opened.get(recoveryId);
    if (!known) return [];
    this.opened.delete(recoveryId);
    return this.targets[known.provider]!.access!.closeAccessPoint(known.instanceId);
  }
}
type AccessDeps = RecoveryActivityDeps["access"];

function setup(targets: RecoveryActivityDeps["targets"] = { AWS: new FakeTarget("AWS") }) {
  const progress = new FakeProgress();
  const images = new FakeImages();
  const instances = new FakeInstances();
  const artifacts = { stored: new Map<string, Buffer>() };
  const access = new FakeAccessService(targets);
  const deps: RecoveryActivityDeps = {
    progress,
    images,
    instances,
    targets,
    access,
    artifacts: {
      put: async (key, body) => void artifacts.stored.set(key, Buffer.from(body)),
      delete: async (key) => void artifacts.stored.delete(key),
    },
  };
  return { acts: createRecoveryActivities(deps), progress, images, instances, artifacts, access };
}

const image: ComposedImage = { bucket: "imports", key: "u1/recoveries/r1.raw", sizeBytes: 4 * 1024 * 1024 };
const launchInput = { recoveryId: "r1", userId: "u1", target: "AWS" as const, imageId: "img-1", name: "web-recovered", allowedCidr: "198.51.100.0/24" };

describe("recovery activities (MockActivityEnvironment, in-memory dependencies)", () => {
  it("composeImage records STARTED on the first attempt, heartbeats its checkpoint and returns the upload id", async () => {
    const { acts, progress, images } = setup();
    const env = envFor({ attempt: 1 });
    const beats: unknown[] = [];
    env.on("heartbeat", (d: unknown) => beats.push(d));

    const composed = await run(env, acts.composeImage, { recoveryId: "r1", userId: "u1", backupId: "b1" });

    expect(composed).toMatchObject({ key: "u1/recoveries/r1.raw", uploadId: "upload-u1/recoveries/r1.raw" });
    expect(images.objects.has("u1/recoveries/r1.raw")).toBe(true);
    // The key is recorded before composing starts, so a cleanup can find a half-done object.
    expect(progress.resources.composedKey).toBe("u1/recoveries/r1.raw");
    expect(progress.events.map((e) => [e.step, e.status, e.attempt])).toEqual([
      ["PREPARING", "STARTED", 1],
      ["PREPARING", "SUCCEEDED", 1],
    ]);
    // The checkpoint is heartbeated as soon as it exists, so a retry resumes the same multipart upload.
    expect(beats.some((d) => (d as { uploadId?: string } | undefined)?.uploadId === "upload-u1/recoveries/r1.raw")).toBe(true);
    expect(progress.percents.at(-1)).toMatchObject({ step: "PREPARING", percent: 100 });
  });

  it("a retried composeImage records RETRYING with its attempt number and resumes from the heartbeated checkpoint", async () => {
    const { acts, progress, images } = setup();
    const env = envFor({ attempt: 3, heartbeatDetails: { uploadId: "upload-from-attempt-2" } });

    const composed = await run(env, acts.composeImage, { recoveryId: "r1", userId: "u1", backupId: "b1" });

    expect(progress.events[0]).toEqual({ recoveryId: "r1", step: "PREPARING", status: "RETRYING", message: "Composing the restore point from its chunks (attempt 3)", attempt: 3 });
    expect(progress.events[1]).toMatchObject({ status: "SUCCEEDED", attempt: 3 });
    expect(images.requests[0]?.resume).toEqual({ uploadId: "upload-from-attempt-2" });
    expect(composed.uploadId).toBe("upload-from-attempt-2");
  });

  it("composeImage turns a missing chunk into a non-retryable MissingChunk failure", async () => {
    const { acts, images } = setup();
    images.failWith = new MissingChunkError("chunk abc of backup b1 is gone");

    const err = await rejectionOf(run(envFor(), acts.composeImage, { recoveryId: "r1", userId: "u1", backupId: "b1" }));

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: "MissingChunk", nonRetryable: true, message: "chunk abc of backup b1 is gone" });
  });

  it("launchInstance: a target error that retrying cannot fix becomes a non-retryable failure with its code; a transient one stays retryable", async () => {
    const target = new FakeTarget("AWS");
    const { acts, progress } = setup({ AWS: target });

    target.failWith.launch = new TargetError("No capacity for t3.medium in eu-west-1a", false, "InsufficientInstanceCapacity");
    const fatal = await rejectionOf(run(envFor(), acts.launchInstance, launchInput));
    expect(fatal).toBeInstanceOf(ApplicationFailure);
    expect(fatal).toMatchObject({ type: "InsufficientInstanceCapacity", nonRetryable: true, message: "No capacity for t3.medium in eu-west-1a" });
    expect(progress.entered).toEqual(["LAUNCHING"]);
    expect(progress.events[0]).toMatchObject({ step: "LAUNCHING", status: "STARTED", attempt: 1 });
    expect(progress.resources.instanceId).toBeUndefined();

    target.failWith.launch = new TargetError("RequestLimitExceeded", true, "RequestLimitExceeded");
    const transient = await rejectionOf(run(envFor({ attempt: 2 }), acts.launchInstance, launchInput));
    expect(transient).toBeInstanceOf(TargetError);
    expect(transient).not.toBeInstanceOf(ApplicationFailure);
    expect(progress.events[1]).toMatchObject({ step: "LAUNCHING", status: "RETRYING", message: "Launching web-recovered (attempt 2)", attempt: 2 });

    delete target.failWith.launch;
    const launched = await run(envFor({ attempt: 3 }), acts.launchInstance, launchInput);
    expect(launched).toMatchObject({ instanceId: "i-r1", securityGroupId: "sg-r1" });
    expect(launched.launchedAtMs).toBeGreaterThan(0);
    expect(progress.resources).toMatchObject({ instanceId: "i-r1", securityGroupId: "sg-r1" });
  });

  it("a step on a target this worker does not have fails at once as TargetNotConfigured", async () => {
    const { acts } = setup({ AWS: new FakeTarget("AWS") });

    const err = await rejectionOf(run(envFor(), acts.startImport, { recoveryId: "r1", target: "LOCAL", image }));

    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: "TargetNotConfigured", nonRetryable: true });
  });

  it("waitForImport records a failed import on the timeline and fails without retry", async () => {
    const target = new FakeTarget("AWS");
    target.importStatus = { state: "failed", progress: 40, message: "ClientError: Unsupported kernel version" };
    const { acts, progress } = setup({ AWS: target });

    const err = await rejectionOf(run(envFor(), acts.waitForImport, { recoveryId: "r1", target: "AWS", importTaskId: "import-r1", pollIntervalMs: 10 }));

    expect(err).toMatchObject({ type: "ImportFailed", nonRetryable: true, message: "Import failed: ClientError: Unsupported kernel version" });
    expect(progress.events).toEqual([{ recoveryId: "r1", step: "IMPORTING", status: "FAILED", message: "ClientError: Unsupported kernel version", attempt: 1 }]);
    expect(progress.resources.imageId).toBeUndefined();
  });

  it("waitForInstance polls until running, and a lost instance is a non-retryable InstanceLost", async () => {
    const target = new FakeTarget("AWS");
    target.instanceStates = [{ state: "pending" }, { state: "pending" }, { state: "running", publicAddress: "203.0.113.7" }];
    const { acts, progress } = setup({ AWS: target });

    const status = await run(envFor(), acts.waitForInstance, { recoveryId: "r1", target: "AWS", instanceId: "i-r1", pollIntervalMs: 5 });
    expect(status).toEqual({ state: "running", publicAddress: "203.0.113.7" });
    expect(target.calls.filter((c) => c.startsWith("describeInstance"))).toHaveLength(3);
    expect(progress.percents.map((p) => p.percent)).toEqual([30, 40, 100]);
    expect(progress.events.at(-1)).toMatchObject({ step: "LAUNCHING", status: "SUCCEEDED", message: "Instance i-r1 running" });

    target.instanceStates = [{ state: "terminated" }];
    const err = await rejectionOf(run(envFor(), acts.waitForInstance, { recoveryId: "r1", target: "AWS", instanceId: "i-r1", pollIntervalMs: 5 }));
    expect(err).toMatchObject({ type: "InstanceLost", nonRetryable: true, message: "Instance i-r1 is terminated before it ran" });
  });

  it("waitForInstance on a worker that did not launch the instance honours the launch's grace through the workflow's launchedAtMs (EC2 not-found right after launch)", async () => {
    const ec2Mock = mockClient(EC2Client);
    try {
      const notFound = () => Object.assign(new EC2ServiceException({ name: "InvalidInstanceID.NotFound", message: "The instance ID 'i-0new' does not exist", $fault: "client", $metadata: { httpStatusCode: 400 } }), { Code: "InvalidInstanceID.NotFound" });
      ec2Mock
        .on(DescribeInstancesCommand)
        .rejectsOnce(notFound())
        .rejectsOnce(notFound())
        .resolves({ Reservations: [{ Instances: [{ InstanceId: "i-0new", State: { Name: "running" }, PublicIpAddress: "203.0.113.9" }] }] });
      // This process never launched i-0new (another worker did, or this one before a restart).
      const ec2 = new EC2Client({ region: "eu-central-1", maxAttempts: 1, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
      const { acts } = setup({ AWS: new AwsTarget(ec2, { importRoleName: "vmimport", instanceType: "t3.medium" }) });
      const status = await run(envFor(), acts.waitForInstance, { recoveryId: "r1", target: "AWS", instanceId: "i-0new", pollIntervalMs: 5, launchedAtMs: Date.now() - 10_000 });
      expect(status).toEqual({ state: "running", publicAddress: "203.0.113.9" });
      expect(ec2Mock.commandCalls(DescribeInstancesCommand)).toHaveLength(3);

      // Without the launch time (a run started before it was passed) the same answer is "lost".
      ec2Mock.reset();
      ec2Mock.on(DescribeInstancesCommand).rejects(notFound());
      const err = await rejectionOf(run(envFor(), acts.waitForInstance, { recoveryId: "r1", target: "AWS", instanceId: "i-0new", pollIntervalMs: 5 }));
      expect(err).toMatchObject({ type: "InstanceLost", nonRetryable: true });
    } finally {
      ec2Mock.restore();
    }
  });

  it("waitForInstance stops polling when cancellation arrives on a heartbeat", async () => {
    const target = new FakeTarget("AWS");
    target.instanceStates = [{ state: "pending" }];
    const { acts } = setup({ AWS: target });
    const env = envFor();
    let beats = 0;
    // The server delivers a cancel request in its answer to a heartbeat: the first one, here,
    // after which the activity sleeps a whole minute before its next poll.
    env.on("heartbeat", () => {
      beats++;
      env.cancel();
    });
    const began = Date.now();

    const err = await rejectionOf(run(env, acts.waitForInstance, { recoveryId: "r1", target: "AWS", instanceId: "i-r1", pollIntervalMs: 60_000 }));

    expect(err).toBeInstanceOf(CancelledFailure);
    // The minute's sleep between polls was cut short, and nothing was polled after the cancel.
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(beats).toBe(1);
    expect(target.calls.filter((c) => c.startsWith("describeInstance"))).toHaveLength(1);
  });

  it("a cancelled startImport waits for the target to remove what it wrote, then fails as cancelled", async () => {
    const target = new FakeTarget("LOCAL");
    target.importRunsUntilAborted = true;
    const { acts, progress } = setup({ LOCAL: target });
    const env = envFor();
    env.on("heartbeat", () => {
      if (target.imports.size > 0) env.cancel();
    });

    const err = await rejectionOf(run(env, acts.startImport, { recoveryId: "r1", target: "LOCAL", image }));

    expect(err).toBeInstanceOf(CancelledFailure);
    expect((err as Error).message).toBe("import of recovery r1 cancelled");
    expect(target.calls).toEqual(["checkAvailable:", "startImport:r1"]);
    expect(target.imports.size).toBe(0);
    expect(progress.resources.importTaskId).toBeUndefined();
    expect(progress.events).toEqual([{ recoveryId: "r1", step: "IMPORTING", status: "STARTED", message: "Importing into LOCAL", attempt: 1 }]);
  });

  it("startImport heartbeats every second while the target reports no progress, and a cancel stops it within a second", async () => {
    const target = new FakeTarget("LOCAL");
    target.importRunsUntilAborted = true;
    target.importReportsProgress = false; // a download held back, or qemu-img converting: nothing to report
    const { acts, progress } = setup({ LOCAL: target });
    const env = envFor();
    const beats: number[] = [];
    let cancelledAt = 0;
    env.on("heartbeat", () => {
      beats.push(Date.now());
      // The cancel arrives with the answer to a heartbeat: the third one, two seconds in.
      if (beats.length === 3) {
        cancelledAt = Date.now();
        env.cancel();
      }
    });

    const err = await rejectionOf(run(env, acts.startImport, { recoveryId: "r1", target: "LOCAL", image }));

    expect(err).toBeInstanceOf(CancelledFailure);
    expect(beats.length).toBe(3);
    // About a second apart, with no progress at all.
    expect(beats[2]! - beats[0]!).toBeGreaterThanOrEqual(1900);
    expect(beats[2]! - beats[0]!).toBeLessThan(4000);
    expect(progress.percents).toEqual([]);
    expect(Date.now() - cancelledAt).toBeLessThan(1000);
    expect(target.imports.size).toBe(0);
  });

  it("a two-activity step numbers its timeline with the step's attempt: startImport's, counted on by a retried waitForImport", async () => {
    const target = new FakeTarget("AWS");
    const { acts, progress } = setup({ AWS: target });
    // startImport on its second attempt: RETRYING 2, and the wait's SUCCEEDED says 2 as well.
    const started = await run(envFor({ attempt: 2 }), acts.startImport, { recoveryId: "r1", target: "AWS", image });
    expect(started.attempt).toBe(2);
    await run(envFor({ attempt: 1 }), acts.waitForImport, { recoveryId: "r1", target: "AWS", importTaskId: started.importTaskId, pollIntervalMs: 5, stepAttempt: started.attempt });
    expect(progress.events.map((e) => [e.step, e.status, e.attempt])).toEqual([
      ["IMPORTING", "RETRYING", 2],
      ["IMPORTING", "SUCCEEDED", 2],
    ]);

    // The wait itself retried (its attempt 2 after startImport's 1): the step's attempt 2, said as a retry.
    progress.events.length = 0;
    await run(envFor({ attempt: 2 }), acts.waitForImport, { recoveryId: "r1", target: "AWS", importTaskId: started.importTaskId, pollIntervalMs: 5, stepAttempt: 1 });
    expect(progress.events.map((e) => [e.step, e.status, e.attempt])).toEqual([
      ["IMPORTING", "RETRYING", 2],
      ["IMPORTING", "SUCCEEDED", 2],
    ]);

    // A history from before the attempt was passed on: counted from 1.
    progress.events.length = 0;
    await run(envFor({ attempt: 1 }), acts.waitForImport, { recoveryId: "r1", target: "AWS", importTaskId: started.importTaskId, pollIntervalMs: 5 });
    expect(progress.events.map((e) => [e.status, e.attempt])).toEqual([["SUCCEEDED", 1]]);
  });

  it("cleanupRecovery also removes what a step recorded before it was cut short (the workflow never learned the ids)", async () => {
    const target = new FakeTarget("AWS");
    const { acts, progress, images } = setup({ AWS: target });
    const env = envFor();
    const composed = await run(env, acts.composeImage, { recoveryId: "r1", userId: "u1", backupId: "b1" });
    const { importTaskId } = await run(env, acts.startImport, { recoveryId: "r1", target: "AWS", image: composed });
    const imported = await run(env, acts.waitForImport, { recoveryId: "r1", target: "AWS", importTaskId, pollIntervalMs: 5 });
    // The launch was cancelled as the provider answered: the instance is recorded, the activity failed.
    const launchEnv = envFor();
    target.onLaunch = () => launchEnv.cancel();
    const err = await rejectionOf(run(launchEnv, acts.launchInstance, { ...launchInput, imageId: imported.imageId }));
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(progress.resources.instanceId).toBeDefined();
    // A composition cancelled before it told its upload id.
    images.uploads.add("upload-u1/recoveries/r1.raw");

    // The workflow knows only the composed key and the image.
    const removed = await run(env, acts.cleanupRecovery, { recoveryId: "r1", userId: "u1", target: "AWS", composedKey: composed.key, imageId: imported.imageId, snapshotIds: imported.snapshotIds });

    expect(removed).toContain(`terminated instance ${progress.resources.instanceId}`);
    expect(target.instances.size).toBe(0);
    expect(images.uploads.size).toBe(0);
    expect(images.objects.size).toBe(0);
  });

  it("cleanupRecovery removes everything the steps recorded, each on the timeline, and the instance row with it", async () => {
    const target = new FakeTarget("AWS");
    const { acts, progress, images, instances, artifacts } = setup({ AWS: target });
    const env = envFor();
    // Run the steps the way the workflow does, collecting what they created.
    const composed = await run(env, acts.composeImage, { recoveryId: "r1", userId: "u1", backupId: "b1" });
    const { importTaskId } = await run(env, acts.startImport, { recoveryId: "r1", target: "AWS", image: composed });
    const imported = await run(env, acts.waitForImport, { recoveryId: "r1", target: "AWS", importTaskId, pollIntervalMs: 5 });
    const launched = await run(env, acts.launchInstance, { ...launchInput, imageId: imported.imageId });
    await run(env, acts.openAccessPoint, { recoveryId: "r1", userId: "u1", target: "AWS", instanceId: launched.instanceId, ports: [22] });
    expect(target.access!.points.size).toBe(1);
    artifacts.stored.set("u1/recoveries/r1-check.png", Buffer.from("png"));
    expect(target.instances.size + target.images.size + target.securityGroups.size + images.objects.size).toBe(4);

    const removed = await run(env, acts.cleanupRecovery, {
      recoveryId: "r1",
      userId: "u1",
      target: "AWS",
      composedKey: composed.key,
      composeUploadId: composed.uploadId,
      importTaskId,
      imageId: imported.imageId,
      snapshotIds: imported.snapshotIds,
      instanceId: launched.instanceId,
      securityGroupId: launched.securityGroupId,
      checkScreenshotKey: "u1/recoveries/r1-check.png",
    });

    expect(removed).toEqual([
      // The access point goes before the machine it leads to.
      "closed wg listener 192.0.2.2:51820",
      "terminated instance i-r1",
      "deleted image img-1",
      "deleted security group sg-r1",
      "deleted boot-check screenshot u1/recoveries/r1-check.png",
      "deleted composed image u1/recoveries/r1.raw",
    ]);
    expect(target.instances.size + target.images.size + target.securityGroups.size + target.access!.points.size).toBe(0);
    expect(target.access!.calls).toContain("closeAccessPoint:i-r1");
    expect(images.objects.size).toBe(0);
    expect(artifacts.stored.size).toBe(0);
    expect(progress.events.filter((e) => e.status === "CLEANUP").map((e) => e.message)).toEqual(removed);
    expect(instances.terminatedFor).toEqual(["r1"]);
  });

  it("cleanupRecovery without a recorded image id discards the import by the recovery id", async () => {
    const target = new FakeTarget("AWS");
    const { acts, progress } = setup({ AWS: target });
    const env = envFor();
    await run(env, acts.startImport, { recoveryId: "r1", target: "AWS", image });
    expect(target.imports.size).toBe(1);

    // The cancel landed before the workflow learned the import task id.
    const removed = await run(env, acts.cleanupRecovery, { recoveryId: "r1", userId: "u1", target: "AWS" });

    expect(removed).toEqual(["cancelled import import-r1"]);
    expect(target.imports.size).toBe(0);
    expect(progress.events.at(-1)).toMatchObject({ step: "FAILED", status: "CLEANUP", message: "cancelled import import-r1" });
  });

  it("completeRecovery records the instance once and says when the machine did not start", async () => {
    const { acts, progress, instances } = setup();
    const input = {
      recoveryId: "r1",
      userId: "u1",
      target: "AWS" as const,
      instanceId: "i-r1",
      name: "web-recovered",
      status: { state: "running" as const, publicAddress: "203.0.113.7" },
      bootCheck: { status: "FAILED" as const, reason: "kernel panic on screen" },
    };
    const env = envFor();

    const first = await run(env, acts.completeRecovery, input);
    const again = await run(env, acts.completeRecovery, input);

    expect(again).toBe(first);
    expect(instances.rows).toHaveLength(1);
    expect(instances.rows[0]).toMatchObject({ recoveryId: "r1", provider: "AWS", providerId: "i-r1", state: "RUNNING", address: "203.0.113.7" });
    expect(progress.finished).toEqual({
      state: "COMPLETED",
      message: "Recovered web-recovered at 203.0.113.7, but it did not start: kernel panic on screen. The machine is kept so you can look at it.",
    });
  });

  it("openAccessPoint opens the running machine's access point (idempotently), says on the timeline where to connect, and returns it", async () => {
    const target = new FakeTarget("LOCAL");
    const { acts, progress, access } = setup({ LOCAL: target });
    const input = { recoveryId: "r1", userId: "u1", target: "LOCAL" as const, instanceId: "vm-r1", ports: [22, 3389, 445] };

    const first = await run(envFor(), acts.openAccessPoint, input);
    const again = await run(envFor({ attempt: 2 }), acts.openAccessPoint, input);

    expect(first).toEqual({ endpoint: "192.0.2.2:51820", tunnelAddress: "100.96.0.1", ports: [22, 3389, 445] });
    expect(again).toEqual(first);
    expect(target.access!.points.size).toBe(1);
    const spec = target.access!.points.get("vm-r1")!.spec;
    expect(spec).toMatchObject({ idempotencyKey: "r1", instanceId: "vm-r1", ports: [22, 3389, 445], tunnelAddress: "100.96.0.1" });
    expect(publicKeyOf(spec.privateKey)).toBe(publicKeyOf(access.opened.get("r1")!.privateKey));
    expect(progress.events.at(-1)).toEqual({
      recoveryId: "r1",
      step: "LAUNCHING",
      status: "SUCCEEDED",
      message: "Private access open (wg listener 192.0.2.2:51820): WireGuard endpoint 192.0.2.2:51820; the machine is 100.96.0.1, ports 22, 3389, 445",
      attempt: 2,
    });
  });

  it("openAccessPoint: a target without private access is said on the timeline (null); a target error that retrying cannot fix is non-retryable", async () => {
    const bare = setup({ AWS: new FakeTarget("AWS", { access: false }) });
    expect(await run(envFor(), bare.acts.openAccessPoint, { recoveryId: "r1", userId: "u1", target: "AWS", instanceId: "i-r1", ports: [22] })).toBeNull();
    expect(bare.progress.events.at(-1)).toMatchObject({ step: "LAUNCHING", status: "SUCCEEDED", message: "The AWS target offers no private access: reach the machine at its own address" });

    const target = new FakeTarget("AWS");
    target.access!.failWith.openAccessPoint = new TargetError("AWS_GATEWAY_AMI_ID is not set", false, "GATEWAY_NOT_CONFIGURED");
    const { acts } = setup({ AWS: target });
    const err = await rejectionOf(run(envFor(), acts.openAccessPoint, { recoveryId: "r1", userId: "u1", target: "AWS", instanceId: "i-r1", ports: [22] }));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: "GATEWAY_NOT_CONFIGURED", nonRetryable: true });
  });

  it("completeRecovery with an access point says how to reach the machine: its tunnel address and ports over WireGuard", async () => {
    const { acts, progress } = setup();
    await run(envFor(), acts.completeRecovery, {
      recoveryId: "r1",
      userId: "u1",
      target: "AWS",
      instanceId: "i-r1",
      name: "web-recovered",
      status: { state: "running", privateAddress: "10.0.1.5" },
      bootCheck: { status: "VERIFIED", rtoSeconds: 61 },
      access: { endpoint: "198.51.100.1:51820", tunnelAddress: "100.96.0.1", ports: [22, 3389] },
    });
    expect(progress.finished?.message).toBe("Recovered: web-recovered at 100.96.0.1 (ports 22, 3389) over WireGuard 198.51.100.1:51820; it started (measured RTO 61 s)");
  });

  it("failRecovery writes a CANCELLED event and the final state with its reason", async () => {
    const { acts, progress } = setup();

    await run(envFor({ attempt: 2 }), acts.failRecovery, { recoveryId: "r1", state: "CANCELLED", failureReason: "CANCELLED", message: "Recovery cancelled; everything it created was removed" });

    expect(progress.events).toEqual([{ recoveryId: "r1", step: "CANCELLED", status: "CANCELLED", message: "Recovery cancelled; everything it created was removed", attempt: 2 }]);
    expect(progress.finished).toEqual({ state: "CANCELLED", failureReason: "CANCELLED", message: "Recovery cancelled; everything it created was removed" });
  });
});
