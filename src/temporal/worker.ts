import path from "node:path";
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel, type WorkerOptions } from "@temporalio/worker";
import type { Config } from "../config";
import type { Logger } from "../logger";
import type { WorkerActivities } from "../../workflows/contracts";
import { temporalConnectionOptions } from "./connection";

export interface WorkerHandle {
  worker: Worker;
  /** Resolves when the worker has stopped (after shutdown()). */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** workflows/index.ts when running from source, dist/workflows/index.js when compiled. */
export function workflowsPath(): string {
  return require.resolve(path.join(__dirname, "..", "..", "workflows"));
}

let runtimeInstalled = false;

/** Routes the Temporal SDK's own logs into our pino logger (once per process). */
function installRuntimeLogger(logger: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (l: LogLevel) => (l === "TRACE" ? "trace" : l === "DEBUG" ? "debug" : l === "INFO" ? "debug" : l === "WARN" ? "warn" : "error") as "debug";
  try {
    Runtime.install({
      logger: new DefaultLogger("WARN", (entry) => logger[level(entry.level)]({ temporal: entry.meta }, entry.message)),
    });
  } catch {
    // A runtime already exists in this process (installed elsewhere): keep its logger.
  }
}

/** The longest gap between two heartbeats the worker sends (see startWorker). */
export const HEARTBEAT_THROTTLE = "1 second";

export async function startWorker(opts: {
  config: Config["temporal"];
  /** The activities this worker runs (the composition root assembles them; a test may pass a few). */
  activities: Partial<WorkerActivities>;
  logger: Logger;
  /** Pre-bundled workflow code (tests bundle once); otherwise bundled from workflowsPath(). */
  workflowBundle?: WorkerOptions["workflowBundle"];
  taskQueue?: string;
}): Promise<WorkerHandle> {
  installRuntimeLogger(opts.logger);
  const connection = await NativeConnection.connect(temporalConnectionOptions(opts.config));
  const worker = await Worker.create({
    connection,
    namespace: opts.config.namespace,
    taskQueue: opts.taskQueue ?? opts.config.taskQueue,
    activities: opts.activities,
    // A heartbeat is how a cancel (or the time limit) reaches a running step: the worker sends them
    // at most this far apart, so a cancelled import or boot stops within about a second instead of
    // 80 % of the heartbeat timeout (16 s with the default 20 s).
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
    // A worker that dies keeps its workflows' next tasks on its sticky queue until this runs out
    // (10 s by default); then any worker takes them. A live worker takes its sticky tasks at once.
    stickyQueueScheduleToStartTimeout: "2 seconds",
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: workflowsPath() }),
  });
  const done = worker.run().finally(() => connection.close());
  return {
    worker,
    done,
    async shutdown() {
      if (worker.getState() === "RUNNING") worker.shutdown();
      await done;
    },
  };
}
