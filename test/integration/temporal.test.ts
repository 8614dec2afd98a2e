import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { Client, Connection } from "@temporalio/client";
import { loadConfig } from "../../src/config";
import { createLogger } from "../../src/logger";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { createConnectivityActivities } from "../../src/temporal/connectivity.activities";
import { connectTemporal } from "../../src/temporal/client";

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

  it("a wrong address fails with a clear error", async () => {
    await expect(connectTemporal({ ...config.temporal, address: "127.0.0.1:9" })).rejects.toThrow();
  });
});
