import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, inject } from "vitest";
import { and, eq } from "drizzle-orm";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import {
  AuthorizeSecurityGroupIngressCommand,
  CancelImportTaskCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImportImageTasksCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  GetConsoleScreenshotCommand,
  ImportImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { mockClient, type AwsClientStub } from "aws-sdk-client-mock";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { waitFor } from "../helpers/wait";
import { backupImage, makeImage, MiB } from "../helpers/backup";
import { openSubscription, withTimeout } from "../helpers/ws";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { CancelRecoveryDocument, RecoveryProgressDocument, RecoveryTimelineDocument, RetryRecoveryDocument, StartRecoveryDocument, type RecoveryProgressSubscription } from "../../src/client/generated/graphql";
import { accessPoints, instances, notifications, recoveries } from "../../src/db/schema";
import { FakeAccess } from "../helpers/fake-target";
import { TerminateInstanceDocument } from "../../src/client/generated/graphql";
import zlib from "node:zlib";

const ec2Error = (code: string, message: string, status = 400) =>
  Object.assign(new EC2ServiceException({ name: code, message, $fault: status < 500 ? "client" : "server", $metadata: { httpStatusCode: status } }), { Code: code });

const ORDER = ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING", "CHECKING", "COMPLETED"];

/** A black 64×32 PNG: what GetConsoleScreenshot shows of a machine whose screen is still dark. */
function blankPng(): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type), data])));
    return Buffer.concat([len, Buffer.from(type), data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(64, 0);
  ihdr.writeUInt32BE(32, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = Buffer.alloc(32 * (1 + 64 * 3));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
}
const statusOf = (system: string, instance: string, failed?: string) => ({
  InstanceStatuses: [
    {
      InstanceId: "i-0fedcba",
      InstanceState: { Name: "running" as const, Code: 16 },
      SystemStatus: { Status: system as "ok", Details: [{ Name: "reachability" as const, Status: (system === "impaired" ? "failed" : system === "ok" ? "passed" : "initializing") as "passed" }] },
      InstanceStatus: { Status: instance as "ok", Details: [{ Name: "reachability" as const, Status: (failed ?? (instance === "ok" ? "passed" : "initializing")) as "passed" }] },
    },
  ],
});

describe("recovery workflow on the AWS target (real Temporal, real S3, EC2 mocked at the SDK edge)", () => {
  let ec2: AwsClientStub<EC2Client>;
  let stack: TestStack;
  let worker: WorkerHandle;
  let user: TestUser;
  let backupId: string;
  const taskQueue = `test-recovery-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    ec2 = mockClient(EC2Client);
    stack = await startStack({
      AWS_RECOVERY_ENABLED: "true",
      TEMPORAL_TASK_QUEUE: taskQueue,
      RECOVERY_POLL_INTERVAL: "100ms",
      RECOVERY_HEARTBEAT_TIMEOUT: "5s",
      RECOVERY_TIME_LIMIT: "60s",
      RECOVERY_BACKSTOP: "30s",
      RECOVERY_BOOT_CHECK_TIMEOUT: "20s",
      // After EC2's checks pass, the boot check keeps looking for corroboration this long; the mocked
      // screenshot is always blank, so every completed recovery waited out the whole default 10 s.
      // Polled every 100 ms, 2 s still takes many screenshots.
      VERIFY_EVIDENCE_GRACE: "2s",
      AWS_DEFAULT_ALLOWED_CIDR: "198.51.100.0/24",
    });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    user = await signUp(stack);
    const { backup } = await backupImage(stack, user.id, makeImage(2 * 8 * MiB + MiB, 8 * MiB, [1]), { sourceName: "fileserver" });
    backupId = backup.id;
  });
  afterAll(async () => {
    await worker.shutdown();
    await stack.stop();
    ec2.restore();
  });

  beforeEach(() => {
    ec2.reset();
    ec2.on(ImportImageCommand).resolves({ ImportTaskId: "import-ami-0123" });
    ec2.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-0abc" });
    ec2.on(AuthorizeSecurityGroupIngressCommand).resolves({});
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-0fedcba" }] });
    ec2.on(CancelImportTaskCommand).resolves({});
    ec2.on(TerminateInstancesCommand).resolves({});
    ec2.on(DeregisterImageCommand).resolves({});
    ec2.on(DeleteSnapshotCommand).resolves({});
    ec2.on(DeleteSecurityGroupCommand).resolves({});
    // EC2's reachability checks: not listed yet, then initializing, then both ok.
    ec2.on(DescribeInstanceStatusCommand).resolvesOnce({ InstanceStatuses: [] }).resolvesOnce(statusOf("initializing", "initializing")).resolves(statusOf("ok", "ok"));
    ec2.on(GetConsoleScreenshotCommand).resolves({ InstanceId: "i-0fedcba", ImageData: blankPng().toString("base64") });
  });
  afterEach(async () => {
    // Leave no active recovery behind for the next test.
    await stack.rt.database.db.update(recoveries).set({ state: "FAILED" }).where(eq(recoveries.userId, user.id));
  });

  const importProgress = (...steps: [string, string?][]) => {
    const tasks = steps.map(([Status, Progress]) =>
      Status === "completed"
        ? { ImportTaskId: "import-ami-0123", Status, ImageId: "ami-0777", SnapshotDetails: [{ SnapshotId: "snap-1" }, { SnapshotId: "snap-2" }] }
        : { ImportTaskId: "import-ami-0123", Status, Progress, StatusMessage: Status === "deleted" ? "ClientError: Unknown OS / missing drivers" : "converting" },
    );
    let chain = ec2.on(DescribeImportImageTasksCommand);
    for (const t of tasks.slice(0, -1)) chain = chain.resolvesOnce({ ImportImageTasks: [t] });
    chain.resolves({ ImportImageTasks: [tasks.at(-1)!] });
  };
  const running = { Reservations: [{ Instances: [{ InstanceId: "i-0fedcba", State: { Name: "running" as const }, PublicIpAddress: "203.0.113.10", PrivateIpAddress: "10.0.0.5", Placement: { AvailabilityZone: "us-east-1a" } }] }] };
  const pending = { Reservations: [{ Instances: [{ InstanceId: "i-0fedcba", State: { Name: "pending" as const } }] }] };

  const composedExists = async (recoveryId: string) =>
    stack.rt.s3
      .send(new HeadObjectCommand({ Bucket: stack.config.s3.buckets.imports, Key: `${user.id}/recoveries/${recoveryId}.raw` }))
      .then(() => true)
      .catch(() => false);

  async function waitForState(recoveryId: string, states: string[], timeoutMs = 30_000) {
    const t0 = Date.now();
    for (;;) {
      const [row] = await stack.rt.database.db.select().from(recoveries).where(eq(recoveries.id, recoveryId));
      if (row && states.includes(row.state)) return row;
      if (Date.now() - t0 > timeoutMs) throw new Error(`recovery ${recoveryId} still ${row?.state}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it("happy path: streams monotonic progress through every state to COMPLETED, with exact EC2 inputs", async () => {
    importProgress(["active", "10"], ["active", "45"], ["active", "80"], ["completed"]);
    ec2.on(DescribeInstancesCommand).resolvesOnce(pending).resolves(running);

    const { startRecovery } = await user.client.request(StartRecoveryDocument, { input: { backupId, target: "AWS" } });
    expect(startRecovery.state).toBe("PENDING");
    // Idempotent while active: the same recovery comes back.
    const again = await user.client.request(StartRecoveryDocument, { input: { backupId, target: "AWS" } });
    expect(again.startRecovery.id).toBe(startRecovery.id);

    const sub = openSubscription(user.client, RecoveryProgressDocument, { recoveryId: startRecovery.id });
    await withTimeout(sub.ended, 30_000, "recovery to complete");
    const seen = sub.results.map((r) => r.data!.recoveryProgress) as RecoveryProgressSubscription["recoveryProgress"][];
    expect(seen.at(-1)).toMatchObject({ state: "COMPLETED", totalProgress: 100, stepProgress: 100 });
    const states = seen.map((s) => s.state);
    expect(states.filter((s, i) => s !== states[i - 1])).toEqual(ORDER.slice(ORDER.indexOf(states[0]!)));
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.totalProgress).toBeGreaterThanOrEqual(seen[i - 1]!.totalProgress);
      if (seen[i]!.state === seen[i - 1]!.state) expect(seen[i]!.stepProgress).toBeGreaterThanOrEqual(seen[i - 1]!.stepProgress);
    }
    // Intermediate import progress reaches the client (coalesced to a few events per second).
    expect(seen.some((s) => s.state === "IMPORTING" && s.stepProgress > 0)).toBe(true);
    await sub.dispose();

    expect(ec2.commandCalls(ImportImageCommand)[0]!.args[0].input).toEqual({
      ClientToken: startRecovery.id,
      RoleName: "vmimport",
      Description: expect.stringContaining(startRecovery.id),
      DiskContainers: [{ Format: "RAW", UserBucket: { S3Bucket: stack.config.s3.buckets.imports, S3Key: `${user.id}/recoveries/${startRecovery.id}.raw` } }],
      TagSpecifications: expect.any(Array),
    });
    const run = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
    // No public address, and no CIDR rule: the machine's access point is the only way in (issue 15).
    expect(run).toMatchObject({ ImageId: "ami-0777", ClientToken: startRecovery.id, MinCount: 1, MaxCount: 1, NetworkInterfaces: [expect.objectContaining({ Groups: ["sg-0abc"], AssociatePublicIpAddress: false })] });
    expect(run.TagSpecifications![0]!.Tags).toEqual(expect.arrayContaining([{ Key: "reclo:recovery", Value: startRecovery.id }, { Key: "reclo:user", Value: user.id }]));
    expect(ec2.commandCalls(AuthorizeSecurityGroupIngressCommand).map((c) => c.args[0].input.IpPermissions![0]!.IpRanges)).toEqual([]);

    const { recovery } = await user.client.request(RecoveryTimelineDocument, { id: startRecovery.id });
    expect(recovery.instance).toMatchObject({ provider: "AWS", providerId: "i-0fedcba", address: "203.0.113.10", privateAddress: "10.0.0.5", zone: "us-east-1a", state: "RUNNING" });
    expect(recovery.events.map((e) => `${e.step}:${e.status}`)).toEqual(
      expect.arrayContaining(["PREPARING:STARTED", "PREPARING:SUCCEEDED", "IMPORTING:STARTED", "IMPORTING:SUCCEEDED", "LAUNCHING:STARTED", "LAUNCHING:SUCCEEDED"]),
    );
    expect(recovery.startedAt).not.toBeNull();
    // The deadline is the limit measured from the workflow's start; startedAt is written by the first
    // activity, a moment later (seconds on a loaded machine), so the gap is just under the limit.
    const untilDeadline = new Date(recovery.deadlineAt!).getTime() - new Date(recovery.startedAt!).getTime();
    expect(untilDeadline).toBeGreaterThan(45_000);
    expect(untilDeadline).toBeLessThanOrEqual(60_000);
    expect(await composedExists(startRecovery.id)).toBe(false); // the composed object is removed once imported

    // Checking it started: EC2's status checks passed (after "initializing"); the dark screen is recorded too.
    expect(recovery.bootCheck).toMatchObject({ status: "VERIFIED", reason: null });
    const machine = recovery.bootCheck!.evidence.filter((e) => e.kind === "MACHINE");
    expect(machine).toEqual([expect.objectContaining({ ok: true, failure: false, detail: expect.stringMatching(/^EC2 status checks passed: system reachability ok, instance reachability ok/) })]);
    expect(recovery.bootCheck!.evidence.some((e) => e.kind === "SCREEN" && !e.ok && /blank/i.test(e.detail))).toBe(true);
    expect(ec2.commandCalls(DescribeInstanceStatusCommand).length).toBeGreaterThanOrEqual(3);
    expect(ec2.commandCalls(DescribeInstanceStatusCommand)[0]!.args[0].input).toEqual({ InstanceIds: ["i-0fedcba"], IncludeAllInstances: true });
    expect(ec2.commandCalls(GetConsoleScreenshotCommand)[0]!.args[0].input).toEqual({ InstanceId: "i-0fedcba", WakeUp: true });
    const shot = Buffer.from(await (await fetch(recovery.bootCheck!.screenshotUrl!)).arrayBuffer());
    expect(shot.equals(blankPng())).toBe(true);
    // RTO: from startRecovery to the passing status checks.
    const passedAt = Date.parse(machine[0]!.at);
    expect(recovery.rtoSeconds).toBeCloseTo((passedAt - Date.parse(recovery.createdAt)) / 1000, 1);
    expect(recovery.rtoSeconds!).toBeGreaterThan(0);
    expect(recovery.events.map((e) => `${e.step}:${e.status}`)).toEqual(expect.arrayContaining(["CHECKING:STARTED", "CHECKING:OBSERVED", "CHECKING:SUCCEEDED"]));
    // The user is told once (issue 16), by the step that reached COMPLETED (just after it published the state).
    const told = await waitFor(
      "the RECOVERY_COMPLETED notification",
      async () => {
        const rows = await stack.rt.database.db.select().from(notifications).where(and(eq(notifications.userId, user.id), eq(notifications.subjectId, startRecovery.id)));
        return rows.length > 0 && rows;
      },
      10_000,
    );
    expect(told.map((n) => n.kind)).toEqual(["RECOVERY_COMPLETED"]);
  });

  it("private access: once the machine runs, LAUNCHING opens its access point with the declared ports; the timeline and the machine say how to reach it; terminating closes it", async () => {
    // The target's access port in memory (the AWS gateway itself is tested in test/unit/aws-target.test.ts).
    const access = new FakeAccess();
    Object.defineProperty(stack.rt.targets.AWS!, "access", { value: access, configurable: true, writable: true });
    try {
      importProgress(["completed"]);
      ec2.on(DescribeInstancesCommand).resolves(running);
      const { startRecovery } = await user.client.request(StartRecoveryDocument, { input: { backupId, target: "AWS", ports: [22, 3389] } });
      const done = await waitForState(startRecovery.id, ["COMPLETED", "FAILED"], 60_000);
      expect(done.state).toBe("COMPLETED");

      const opened = access.points.get("i-0fedcba")!;
      expect(opened.spec).toMatchObject({ idempotencyKey: startRecovery.id, instanceId: "i-0fedcba", ports: [22, 3389], peers: [] });
      expect(opened.spec.tunnelAddress).toMatch(/^100\.(9[6-9]|10\d|11[01])\.\d+\.1$/);
      const endpoint = `192.0.2.2:${opened.port}`;
      const { recovery } = await user.client.request(RecoveryTimelineDocument, { id: startRecovery.id });
      const steps = recovery.events.map((e) => `${e.step}:${e.status}:${e.message}`);
      const openedAt = steps.findIndex((s) => s.startsWith("LAUNCHING:SUCCEEDED:Private access open"));
      expect(steps[openedAt]).toBe(`LAUNCHING:SUCCEEDED:Private access open (wg listener ${endpoint}): WireGuard endpoint ${endpoint}; the machine is ${opened.spec.tunnelAddress}, ports 22, 3389`);
      // After the machine runs, before the boot check.
      expect(openedAt).toBeGreaterThan(steps.indexOf("LAUNCHING:SUCCEEDED:Instance i-0fedcba running"));
      expect(openedAt).toBeLessThan(steps.findIndex((s) => s.startsWith("CHECKING:STARTED")));
      expect(recovery.message).toContain(`at ${opened.spec.tunnelAddress} (ports 22, 3389) over WireGuard ${endpoint}`);
      expect(recovery.instance!.privateAccess).toEqual({ endpoint, tunnelAddress: opened.spec.tunnelAddress, ports: [22, 3389] });

      await user.client.request(TerminateInstanceDocument, { id: recovery.instance!.id });
      const [ap] = await stack.rt.database.db.select().from(accessPoints).where(eq(accessPoints.recoveryId, startRecovery.id));
      expect(ap!.closedAt).not.toBeNull();
      expect(ap!.openSubnet).toBeNull();
    } finally {
      delete (stack.rt.targets.AWS as { access?: unknown }).access;
    }
  });

  it("an instance whose reachability check fails is COMPLETED with bootCheck FAILED and the evidence, and is kept", async () => {
    importProgress(["completed"]);
    ec2.on(DescribeInstancesCommand).resolves(running);
    ec2.on(DescribeInstanceStatusCommand).resolvesOnce(statusOf("initializing", "initializing")).resolves(statusOf("ok", "impaired", "failed"));
    const r = await stack.rt.services.recoveries.start(user.id, { backupId, target: "AWS" });
    const done = await waitForState(r.id, ["COMPLETED", "FAILED"]);
    expect(done.state).toBe("COMPLETED");
    expect(done.bootCheck).toMatchObject({ status: "FAILED", reason: expect.stringContaining("EC2 status checks failed: system reachability ok, instance reachability impaired (system reachability: passed, instance reachability: failed)") });
    expect(done.bootCheck!.evidence.some((e) => e.kind === "MACHINE" && e.failure)).toBe(true);
    expect(done.bootCheck!.evidence.some((e) => e.ok)).toBe(false);
    expect(done.rtoSeconds).toBeNull();
    expect(done.message).toMatch(/did not start: EC2 status checks failed.*The machine is kept/);
    // Not silently: the timeline says it; and the machine is not terminated.
    const events = await stack.rt.services.recoveries.events(user.id, r.id);
    expect(events.some((e) => e.step === "CHECKING" && e.status === "FAILED" && /did not start/.test(e.message ?? ""))).toBe(true);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    const rows = await stack.rt.database.db.select().from(instances).where(eq(instances.recoveryId, r.id));
    expect(rows.map((x) => x.state)).toEqual(["RUNNING"]);
  });

  it("retries throttling with backoff and completes; the timeline shows the retry", async () => {
    ec2.on(ImportImageCommand).rejectsOnce(ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503)).resolves({ ImportTaskId: "import-ami-0123" });
    importProgress(["completed"]);
    ec2.on(DescribeInstancesCommand).resolves(running);
    const r = await stack.rt.services.recoveries.start(user.id, { backupId, target: "AWS" });
    const done = await waitForState(r.id, ["COMPLETED", "FAILED"]);
    expect(done.state).toBe("COMPLETED");
    expect(ec2.commandCalls(ImportImageCommand).length).toBeGreaterThanOrEqual(2);
    const events = await stack.rt.services.recoveries.events(user.id, r.id);
    expect(events.some((e) => e.step === "IMPORTING" && e.status === "RETRYING" && e.attempt === 2)).toBe(true);
    // Same client token on the retry: no duplicate import.
    expect(new Set(ec2.commandCalls(ImportImageCommand).map((c) => c.args[0].input.ClientToken))).toEqual(new Set([r.id]));
  });

  it("a deleted import fails at once (no retries), with its message, and cleans up", async () => {
    importProgress(["active", "20"], ["deleted"]);
    const r = await stack.rt.services.recoveries.start(user.id, { backupId, target: "AWS" });
    const done = await waitForState(r.id, ["COMPLETED", "FAILED"]);
    expect(done).toMatchObject({ state: "FAILED", failureReason: expect.stringContaining("Unknown OS") });
    expect(ec2.commandCalls(ImportImageCommand)).toHaveLength(1);
    // Cleanup asks the task's state first: a deleted task has nothing left to cancel or delete.
    expect(ec2.commandCalls(CancelImportTaskCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
    expect(await composedExists(r.id)).toBe(false);
    // The user is told once (issue 16): the workflow's failRecovery reached FAILED (and then raised it).
    const told = await waitFor(
      "the RECOVERY_FAILED notification",
      async () => {
        const rows = await stack.rt.database.db.select().from(notifications).where(and(eq(notifications.userId, user.id), eq(notifications.subjectId, r.id)));
        return rows.length > 0 && rows;
      },
      10_000,
    );
    expect(told.map((n) => n.kind)).toEqual(["RECOVERY_FAILED"]);
    expect(told[0]!.body).toContain("Unknown OS");
  });

  it("retryRecovery starts a FAILED recovery again as a new one with the same target, CIDR and ports; one in any other state is CONFLICT", async () => {
    importProgress(["deleted"]);
    const { startRecovery: first } = await user.client.request(StartRecoveryDocument, { input: { backupId, target: "AWS", allowedCidr: "203.0.113.0/24", ports: [22, 8443] } });
    expect(await waitForState(first.id, ["COMPLETED", "FAILED"])).toMatchObject({ state: "FAILED" });
    importProgress(["completed"]);
    ec2.on(DescribeInstancesCommand).resolves(running);
    const { retryRecovery } = await user.client.request(RetryRecoveryDocument, { id: first.id });
    expect(retryRecovery.id).not.toBe(first.id);
    const done = await waitForState(retryRecovery.id, ["COMPLETED", "FAILED"], 60_000);
    expect(done.state).toBe("COMPLETED");
    const [again] = await stack.rt.database.db.select().from(recoveries).where(eq(recoveries.id, retryRecovery.id));
    expect(again).toMatchObject({ backupId, target: "AWS", allowedCidr: "203.0.113.0/24", launchOptions: { allowInternet: false, ports: [22, 8443], retryOf: first.id } });
    // The failed one keeps its reason; a COMPLETED recovery is not retried.
    const [old] = await stack.rt.database.db.select().from(recoveries).where(eq(recoveries.id, first.id));
    expect(old).toMatchObject({ state: "FAILED", failureReason: expect.stringContaining("Unknown OS") });
    const refused = await user.client.execute(RetryRecoveryDocument, { id: retryRecovery.id });
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: "CONFLICT", state: "COMPLETED" });
    const { recovery } = await user.client.request(RecoveryTimelineDocument, { id: retryRecovery.id });
    await user.client.request(TerminateInstanceDocument, { id: recovery.instance!.id });
  });

  it("cancelRecovery compensates and ends CANCELLED", async () => {
    importProgress(["active", "5"]);
    const r = await stack.rt.services.recoveries.start(user.id, { backupId, target: "AWS" });
    await waitForState(r.id, ["IMPORTING"]);
    await new Promise((res) => setTimeout(res, 300));
    const { cancelRecovery } = await user.client.request(CancelRecoveryDocument, { id: r.id });
    expect(cancelRecovery.id).toBe(r.id);
    const done = await waitForState(r.id, ["CANCELLED", "FAILED", "COMPLETED"]);
    expect(done).toMatchObject({ state: "CANCELLED", failureReason: "CANCELLED" });
    expect(ec2.commandCalls(CancelImportTaskCommand)).toHaveLength(1);
    expect(await composedExists(r.id)).toBe(false);
    const events = await stack.rt.services.recoveries.events(user.id, r.id);
    expect(events.filter((e) => e.status === "CLEANUP").map((e) => e.message)).toEqual(
      expect.arrayContaining(["cancelled import import-ami-0123", `deleted composed image ${user.id}/recoveries/${r.id}.raw`]),
    );
    const again = await user.client.execute(CancelRecoveryDocument, { id: r.id });
    expect(again.body.errors![0]!.extensions!.code).toBe("CONFLICT");
    // Cancelled by the user: nothing to tell them.
    expect(await stack.rt.database.db.select().from(notifications).where(and(eq(notifications.userId, user.id), eq(notifications.subjectId, r.id)))).toEqual([]);
  });
});

describe("the recovery time limit (shortened to seconds)", () => {
  let ec2: AwsClientStub<EC2Client>;
  let stack: TestStack;
  let worker: WorkerHandle;
  let user: TestUser;
  const taskQueue = `test-recovery-limit-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    ec2 = mockClient(EC2Client);
    stack = await startStack({ AWS_RECOVERY_ENABLED: "true", TEMPORAL_TASK_QUEUE: taskQueue, RECOVERY_POLL_INTERVAL: "100ms", RECOVERY_HEARTBEAT_TIMEOUT: "5s", RECOVERY_TIME_LIMIT: "6s", RECOVERY_BACKSTOP: "30s" });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    user = await signUp(stack);
  });
  afterAll(async () => {
    await worker.shutdown();
    await stack.stop();
    ec2.restore();
  });

  it("fires exactly at the limit, removes every resource created, and ends FAILED with TIMED_OUT", async () => {
    const { backup } = await backupImage(stack, user.id, makeImage(8 * MiB + MiB, 8 * MiB), { sourceName: "slow" });
    ec2.on(ImportImageCommand).resolves({ ImportTaskId: "import-ami-9" });
    ec2.on(DescribeImportImageTasksCommand).resolves({ ImportImageTasks: [{ ImportTaskId: "import-ami-9", Status: "completed", ImageId: "ami-9", SnapshotDetails: [{ SnapshotId: "snap-9a" }, { SnapshotId: "snap-9b" }] }] });
    ec2.on(CreateSecurityGroupCommand).resolves({ GroupId: "sg-9" });
    ec2.on(AuthorizeSecurityGroupIngressCommand).resolves({});
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: "i-9" }] });
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: "i-9", State: { Name: "pending" as const } }] }] }); // never comes up
    ec2.on(TerminateInstancesCommand).resolves({});
    ec2.on(DeregisterImageCommand).resolves({});
    ec2.on(DeleteSnapshotCommand).resolves({});
    ec2.on(DeleteSecurityGroupCommand).resolves({});

    const r = await stack.rt.services.recoveries.start(user.id, { backupId: backup.id, target: "AWS", allowedCidr: "192.0.2.0/24" });
    let row = r;
    for (let i = 0; i < 300 && !["FAILED", "COMPLETED", "CANCELLED"].includes(row.state); i++) {
      await new Promise((res) => setTimeout(res, 100));
      row = await stack.rt.services.recoveries.get(user.id, r.id);
    }
    expect(row).toMatchObject({ state: "FAILED", failureReason: "TIMED_OUT" });
    const elapsed = row.completedAt!.getTime() - row.startedAt!.getTime();
    expect(elapsed).toBeGreaterThanOrEqual(5_500);
    expect(elapsed).toBeLessThan(15_000);
    expect(ec2.commandCalls(TerminateInstancesCommand)[0]!.args[0].input).toEqual({ InstanceIds: ["i-9"] });
    expect(ec2.commandCalls(DeregisterImageCommand)[0]!.args[0].input).toEqual({ ImageId: "ami-9" });
    expect(ec2.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId).sort()).toEqual(["snap-9a", "snap-9b"]);
    expect(ec2.commandCalls(DeleteSecurityGroupCommand)[0]!.args[0].input).toEqual({ GroupId: "sg-9" });
    expect(ec2.commandCalls(CancelImportTaskCommand)).toHaveLength(0); // the import had finished
    const head = await stack.rt.s3
      .send(new HeadObjectCommand({ Bucket: stack.config.s3.buckets.imports, Key: `${user.id}/recoveries/${r.id}.raw` }))
      .then(() => "exists")
      .catch(() => "gone");
    expect(head).toBe("gone");
    const rows = await stack.rt.database.db.select().from(instances).where(eq(instances.recoveryId, r.id));
    expect(rows).toEqual([]);
    // The workflow itself ends with the outcome (its execution timeout above the limit is only a backstop).
    const handle = stack.rt.temporal.client.workflow.getHandle(r.workflowId);
    expect(await handle.result()).toMatchObject({ state: "FAILED", reason: "TIMED_OUT" });
    const desc = await handle.describe();
    expect(desc.status.name).toBe("COMPLETED");
    expect(desc.raw.executionConfig?.workflowExecutionTimeout?.seconds?.toString()).toBe("36"); // 6 s limit + 30 s backstop
  });
});
