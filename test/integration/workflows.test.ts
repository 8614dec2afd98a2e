import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { randomUUID } from "node:crypto";
import { TestWorkflowEnvironment } from "@temporalio/testing";
import { DefaultLogger, Runtime, Worker } from "@temporalio/worker";
import { Context } from "@temporalio/activity";
import { ApplicationFailure, CancelledFailure } from "@temporalio/common";
import { WorkflowFailedError } from "@temporalio/client";
import { recoveryWorkflow } from "../../workflows/recovery";
import { HEARTBEAT_THROTTLE } from "../../src/temporal/worker";
import type { RecoveryActivities, RecoveryCleanup } from "../../workflows/contracts";
import { recoveryInput } from "../helpers/workflow-inputs";

/**
 * The recovery workflow's control flow against the real Temporal dev server (the one the global
 * setup starts or joins), with the activities mocked: plain functions typed by the workflow's
 * activity interface (workflows/contracts.ts) that record their calls. Each test has its own task
 * queue and worker, running the workflow bundle the global setup built.
 */

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  // This file's process owns its Temporal runtime: workers log only warnings and errors.
  Runtime.install({ logger: new DefaultLogger("WARN") });
  env = await TestWorkflowEnvironment.createFromExistingServer({
    address: process.env.TEMPORAL_ADDRESS ?? "127.0.0.1:7233",
    namespace: process.env.TEMPORAL_NAMESPACE ?? "default",
  });
});

afterAll(async () => {
  await env?.teardown();
});

type Call = { name: keyof RecoveryActivities; input: unknown };

/** A promise with its resolve function, to wait on a condition an activity signals. */
function signal<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Mocked recovery activities: each records its call and answers like a successful step;
 * `overrides` replace single steps (a failing launch, a machine that never comes up).
 */
function mockActivities(overrides: Partial<RecoveryActivities> = {}) {
  const calls: Call[] = [];
  const record =
    <K extends keyof RecoveryActivities>(name: K, impl: RecoveryActivities[K]): RecoveryActivities[K] =>
    ((input: never) => {
      calls.push({ name, input });
      return (impl as (input: never) => unknown)(input);
    }) as RecoveryActivities[K];
  const defaults: RecoveryActivities = {
    beginRecovery: async () => {},
    composeImage: async (i) => ({ bucket: "imports", key: `${i.userId}/recoveries/${i.recoveryId}.raw`, sizeBytes: 4 << 20, uploadId: "upload-1" }),
    startImport: async (i) => ({ importTaskId: `import-${i.recoveryId}` }),
    waitForImport: async () => ({ imageId: "ami-1", snapshotIds: ["snap-1"] }),
    launchInstance: async (i) => ({ instanceId: `i-${i.recoveryId}`, securityGroupId: "sg-1", launchedAtMs: 1_000 }),
    waitForInstance: async () => ({ state: "running", publicAddress: "203.0.113.7" }),
    openAccessPoint: async (i) => ({ endpoint: "198.51.100.1:51820", tunnelAddress: "100.96.0.1", ports: i.ports }),
    checkBoot: async () => ({ status: "VERIFIED", rtoSeconds: 42 }),
    deleteComposedImage: async () => {},
    completeRecovery: async () => "row-1",
    cleanupRecovery: async (r: RecoveryCleanup) => [r.instanceId, r.imageId, r.composedKey].filter((x): x is string => !!x).map((x) => `removed ${x}`),
    failRecovery: async () => {},
  };
  const merged = { ...defaults, ...overrides };
  const activities = Object.fromEntries((Object.keys(merged) as (keyof RecoveryActivities)[]).map((name) => [name, record(name, merged[name])])) as unknown as RecoveryActivities;
  return { activities, calls, names: () => calls.map((c) => c.name), input: <K extends keyof RecoveryActivities>(name: K) => calls.find((c) => c.name === name)?.input as Parameters<RecoveryActivities[K]>[0] | undefined };
}


/** A step that never ends by itself: heartbeats until cancelled, and writes how it ended into `order`. */
async function heartbeatUntilCancelled(name: string, order: string[], started?: () => void): Promise<never> {
  started?.();
  const ctx = Context.current();
  try {
    for (;;) {
      ctx.heartbeat();
      await ctx.sleep(100);
    }
  } catch (err) {
    order.push(err instanceof CancelledFailure ? `${name} cancelled` : `${name} failed`);
    throw err;
  }
}

async function workerFor(activities: RecoveryActivities) {
  const taskQueue = `test-workflows-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? "default",
    taskQueue,
    workflowBundle: { codePath: inject("workflowBundlePath") },
    activities,
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
  return { worker, taskQueue };
}

describe("recoveryWorkflow with mocked activities (TestWorkflowEnvironment on the dev server)", () => {
  it("runs every step in order and returns COMPLETED with the instance", async () => {
    const mock = mockActivities();
    const { worker, taskQueue } = await workerFor(mock.activities);
    const input = recoveryInput();

    const outcome = await worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [input], taskQueue, workflowId: `recovery-${input.recoveryId}` }));

    expect(outcome).toEqual({ state: "COMPLETED", instanceRowId: "row-1", instanceId: `i-${input.recoveryId}` });
    expect(mock.names()).toEqual(["beginRecovery", "composeImage", "startImport", "waitForImport", "launchInstance", "waitForInstance", "openAccessPoint", "checkBoot", "deleteComposedImage", "completeRecovery"]);
    // The running machine's access point opens with the declared ports (default SSH, RDP, SMB).
    expect(mock.input("openAccessPoint")).toEqual({ recoveryId: input.recoveryId, userId: "user-1", target: "AWS", instanceId: `i-${input.recoveryId}`, ports: [22, 3389, 445] });
    // Each step gets what the previous ones produced.
    expect(mock.input("launchInstance")).toMatchObject({ imageId: "ami-1", name: "web-recovered", allowedCidr: "198.51.100.0/24", target: "AWS" });
    expect(mock.input("checkBoot")).toMatchObject({ instanceId: `i-${input.recoveryId}`, launchedAtMs: 1_000, timeoutMs: 5_000, ports: [22] });
    expect(mock.input("deleteComposedImage")).toEqual({ recoveryId: input.recoveryId, key: `user-1/recoveries/${input.recoveryId}.raw` });
    expect(mock.input("completeRecovery")).toMatchObject({ instanceId: `i-${input.recoveryId}`, status: { state: "running", publicAddress: "203.0.113.7" }, bootCheck: { status: "VERIFIED", rtoSeconds: 42 } });
    // How to reach it: the access point's endpoint, the machine's tunnel address and ports.
    expect(mock.input("completeRecovery")?.access).toEqual({ endpoint: "198.51.100.1:51820", tunnelAddress: "100.96.0.1", ports: [22, 3389, 445] });
    const begin = mock.input("beginRecovery");
    expect(begin?.deadlineAt).toBeGreaterThan(Date.now());
  });

  it("declared ports reach the launch and the access point; an isolated machine gets no access point", async () => {
    const declared = mockActivities();
    const a = await workerFor(declared.activities);
    const input = recoveryInput({ ports: [2222, 8443] });
    await a.worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [input], taskQueue: a.taskQueue, workflowId: `recovery-${input.recoveryId}` }));
    expect(declared.input("launchInstance")?.ports).toEqual([2222, 8443]);
    expect(declared.input("openAccessPoint")?.ports).toEqual([2222, 8443]);

    const isolated = mockActivities();
    const b = await workerFor(isolated.activities);
    const quiet = recoveryInput({ isolated: true });
    const outcome = await b.worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [quiet], taskQueue: b.taskQueue, workflowId: `recovery-${quiet.recoveryId}` }));
    expect(outcome.state).toBe("COMPLETED");
    expect(isolated.names()).not.toContain("openAccessPoint");
    expect(isolated.input("completeRecovery")?.access).toBeNull();
  });

  it("an access point that cannot open fails the recovery and cleanup removes the machine (and what the step opened)", async () => {
    const mock = mockActivities({
      openAccessPoint: async () => {
        throw ApplicationFailure.nonRetryable("no free port in VPN_PORT_RANGE", "NO_FREE_PORT");
      },
    });
    const { worker, taskQueue } = await workerFor(mock.activities);
    const input = recoveryInput();

    const outcome = await worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [input], taskQueue, workflowId: `recovery-${input.recoveryId}` }));

    expect(outcome).toMatchObject({ state: "FAILED", reason: "NO_FREE_PORT: no free port in VPN_PORT_RANGE" });
    expect(mock.names().slice(-4)).toEqual(["waitForInstance", "openAccessPoint", "cleanupRecovery", "failRecovery"]);
    // The machine is known to cleanup, which closes the recovery's access point before it terminates it.
    expect(mock.input("cleanupRecovery")).toMatchObject({ recoveryId: input.recoveryId, instanceId: `i-${input.recoveryId}` });
    expect(mock.names()).not.toContain("checkBoot");
  });

  it("without a boot check configured, it completes without the CHECKING step", async () => {
    const mock = mockActivities();
    const { worker, taskQueue } = await workerFor(mock.activities);
    const input = recoveryInput({ bootCheck: undefined });

    const outcome = await worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [input], taskQueue, workflowId: `recovery-${input.recoveryId}` }));

    expect(outcome.state).toBe("COMPLETED");
    expect(mock.names()).not.toContain("checkBoot");
    expect(mock.input("completeRecovery")?.bootCheck).toBeUndefined();
  });

  it("a launch that fails for good runs cleanup with what was created and returns FAILED with the root cause", async () => {
    const mock = mockActivities({
      launchInstance: async () => {
        throw ApplicationFailure.nonRetryable("No capacity for t3.medium in eu-west-1a", "INSUFFICIENT_CAPACITY");
      },
    });
    const { worker, taskQueue } = await workerFor(mock.activities);
    const input = recoveryInput();

    const outcome = await worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [input], taskQueue, workflowId: `recovery-${input.recoveryId}` }));

    const reason = "INSUFFICIENT_CAPACITY: No capacity for t3.medium in eu-west-1a";
    expect(outcome).toEqual({ state: "FAILED", reason, cleanedUp: [`removed ami-1`, `removed user-1/recoveries/${input.recoveryId}.raw`] });
    // Non-retryable: launched once; nothing after the launch ran; cleanup, then the FAILED state.
    expect(mock.names()).toEqual(["beginRecovery", "composeImage", "startImport", "waitForImport", "launchInstance", "cleanupRecovery", "failRecovery"]);
    expect(mock.input("cleanupRecovery")).toEqual({
      recoveryId: input.recoveryId,
      userId: "user-1",
      target: "AWS",
      composedKey: `user-1/recoveries/${input.recoveryId}.raw`,
      composeUploadId: "upload-1",
      importTaskId: `import-${input.recoveryId}`,
      imageId: "ami-1",
      snapshotIds: ["snap-1"],
    });
    expect(mock.input("failRecovery")).toEqual({ recoveryId: input.recoveryId, state: "FAILED", failureReason: reason, message: `Recovery failed: ${reason}` });
  });

  it("a transient launch error is retried by the retry policy and the recovery still completes", async () => {
    let launches = 0;
    const mock = mockActivities({
      launchInstance: async (i) => {
        if (++launches === 1) throw new Error("RequestLimitExceeded");
        return { instanceId: `i-${i.recoveryId}`, launchedAtMs: 2_000 };
      },
    });
    const { worker, taskQueue } = await workerFor(mock.activities);
    const input = recoveryInput({ bootCheck: undefined });

    const outcome = await worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [input], taskQueue, workflowId: `recovery-${input.recoveryId}` }));

    expect(outcome.state).toBe("COMPLETED");
    expect(launches).toBe(2);
    expect(mock.names()).not.toContain("cleanupRecovery");
  });

  it("cancelling while the machine starts stops the step, cleans up after it, marks the recovery CANCELLED and ends cancelled", async () => {
    const waiting = signal();
    const order: string[] = [];
    const mock = mockActivities({
      // Never sees the machine running: heartbeats (which is how the cancel reaches it) until cancelled.
      waitForInstance: () => heartbeatUntilCancelled("waitForInstance", order, waiting.resolve),
      cleanupRecovery: async (r) => {
        order.push("cleanup");
        return [`removed ${r.instanceId}`];
      },
    });
    const { worker, taskQueue } = await workerFor(mock.activities);
    const input = recoveryInput();

    const result = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(recoveryWorkflow, { args: [input], taskQueue, workflowId: `recovery-${input.recoveryId}` });
      await waiting.promise;
      await handle.cancel();
      return handle.result().then(
        () => new Error("the workflow completed"),
        (err: unknown) => err,
      );
    });

    expect(result).toBeInstanceOf(WorkflowFailedError);
    expect((result as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    // The workflow waited for the step to stop before it cleaned up.
    expect(order).toEqual(["waitForInstance cancelled", "cleanup"]);
    expect(mock.names().slice(-3)).toEqual(["waitForInstance", "cleanupRecovery", "failRecovery"]);
    expect(mock.input("cleanupRecovery")).toMatchObject({ instanceId: `i-${input.recoveryId}`, securityGroupId: "sg-1", imageId: "ami-1" });
    expect(mock.input("failRecovery")).toEqual({ recoveryId: input.recoveryId, state: "CANCELLED", failureReason: "CANCELLED", message: "Recovery cancelled; everything it created was removed" });
    expect(mock.names()).not.toContain("completeRecovery");
  });

  it("past its time limit the recovery is cancelled from inside, cleaned up and returns FAILED with TIMED_OUT", async () => {
    const order: string[] = [];
    const mock = mockActivities({
      // An import that never finishes.
      waitForImport: () => heartbeatUntilCancelled("waitForImport", order),
      cleanupRecovery: async (r) => {
        order.push("cleanup");
        return [`removed ${r.composedKey}`];
      },
    });
    const { worker, taskQueue } = await workerFor(mock.activities);
    // Slack for the three instant steps before the import on a loaded machine. The heartbeat timeout
    // is longer than the limit, so no attempt can time out and be retried before the limit cancels
    // it (heartbeats go at least every second: the cancel reaches the step within about one).
    const input = recoveryInput({ timeLimitMs: 5_000, heartbeatTimeoutMs: 10_000 });

    const outcome = await worker.runUntil(env.client.workflow.execute(recoveryWorkflow, { args: [input], taskQueue, workflowId: `recovery-${input.recoveryId}` }));

    expect(outcome).toEqual({ state: "FAILED", reason: "TIMED_OUT", cleanedUp: [`removed user-1/recoveries/${input.recoveryId}.raw`] });
    // Cleanup runs only after the import has stopped.
    expect(order).toEqual(["waitForImport cancelled", "cleanup"]);
    expect(mock.input("cleanupRecovery")).toMatchObject({ importTaskId: `import-${input.recoveryId}`, composedKey: `user-1/recoveries/${input.recoveryId}.raw` });
    expect(mock.input("failRecovery")).toEqual({ recoveryId: input.recoveryId, state: "FAILED", failureReason: "TIMED_OUT", message: "Recovery exceeded its 5 s limit; everything it created was removed" });
    expect(mock.names()).not.toContain("launchInstance");
  });
});
