import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { Client, Connection } from "@temporalio/client";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/logger";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { createConnectivityActivities } from "../../src/temporal/connectivity.activities";
import { connectTemporal } from "../../src/temporal/client";
import { cuttableProxy } from "../helpers/proxy";

describe("Temporal worker under the real dev server", () => {
  const config = loadConfig({});
  const taskQueue = `test-connectivity-${process.pid}-${Date.now()}`;
  let worker: WorkerHandle;
  let connection: Connection;
  let client: Client;

  beforeAll(async () => {
    worker = await startWorker({
      config: config.temporal,
      taskQueue,
      // Only `echo` runs here: the other activities' dependencies are not needed.
      activities: createConnectivityActivities({ logger: createLogger("silent") }),
      logger: createLogger("silent"),
      workflowBundle: { codePath: inject("workflowBundlePath") },
    });
    connection = await Connection.connect({ address: config.temporal.address });
    client = new Client({ connection, namespace: config.temporal.namespace });
  });
  afterAll(async () => {
    await worker.shutdown();
    await connection.close();
  });

  it("runs the connectivity workflow through its activity", async () => {
    const result = await client.workflow.execute("connectivityCheck", { taskQueue, workflowId: `${taskQueue}-1`, args: ["ping"] });
    expect(result).toBe(`pong: ping (worker pid ${process.pid})`);
    const history = await client.workflow.getHandle(`${taskQueue}-1`).fetchHistory();
    const kinds = history.events!.map((e) => e.eventType);
    expect(kinds.length).toBeGreaterThan(5);
  });

  it("the API's client answers the readiness ping", async () => {
    const handle = await connectTemporal(config.temporal);
    await expect(handle.ping()).resolves.toBeUndefined();
    await handle.close();
  });

  it("closing the client while a call is between retries ends that call, and nothing throws later", async () => {
    const proxy = await cuttableProxy(Number(config.temporal.address.split(":").at(-1)));
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on("uncaughtException", onUncaught);
    try {
      const handle = await connectTemporal({ ...config.temporal, address: `127.0.0.1:${proxy.port}` });
      await handle.ping();
      await proxy.cut();
      // Unreachable: the client retries (UNAVAILABLE) with timers; close while they are pending.
      const call = handle.connection.workflowService.getSystemInfo({});
      const settled = call.then(
        () => "answered",
        (err: { code?: number }) => err.code,
      );
      await new Promise((r) => setTimeout(r, 150));
      await handle.close();
      // Every retry the client had scheduled (at most 4 attempts, well under 2 s) has fired by now.
      expect(await settled).toBe(1); // CANCELLED
      await new Promise((r) => setTimeout(r, 2000));
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
      await proxy.close();
    }
  });

  it("a wrong address fails with a clear error", async () => {
    await expect(connectTemporal({ ...config.temporal, address: "127.0.0.1:9" })).rejects.toThrow();
  });
});
