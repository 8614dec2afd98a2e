// First: sizes the libuv thread pool before anything queues work on it.
import { threadPool } from "./threadpool";
import "reflect-metadata";
import type { Config } from "./config";
import { configOrExit, createLogger, fatal, onShutdown } from "./process";
import { createRuntime } from "./runtime";
import { startApp } from "./server/app";
import { startWorker, type WorkerHandle } from "./temporal/worker";
import { activitiesFor } from "./worker-activities";
import { ensureSchedules, productSchedules } from "./temporal/schedules";

/** The whole product in one process: GraphQL API + Temporal worker (RUN_WORKER=false for API only). */
export async function main(opts: { worker: boolean; api: boolean }): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.logLevel);
  if (threadPool.startedEarly)
    logger.warn({ threads: threadPool.startedEarly, wanted: threadPool.size }, "the libuv thread pool started before it was sized: set UV_THREADPOOL_SIZE in the environment");
  const rt = await createRuntime(config, logger).catch((err: unknown) => fatal(logger, err));
  if (opts.api !== opts.worker && !config.redisUrl)
    logger.warn("API and worker run in separate processes without REDIS_URL: live progress and log-outs will not cross processes; set REDIS_URL");
  let worker: WorkerHandle | undefined;
  try {
    if (opts.worker) {
      worker = await startWorker({
        config: config.temporal,
        activities: activitiesFor(rt),
        logger,
        workflowBundle: config.workflowBundlePath ? { codePath: config.workflowBundlePath } : undefined,
      });
      if (config.runSchedules)
        await ensureSchedules(
        rt.temporal.client,
        config.temporal.taskQueue,
        productSchedules({ maintenanceIntervalMs: config.backups.maintenanceIntervalMs, instanceStoppedTtlMs: config.recovery.instanceStoppedTtlMs, missedBackupCheckIntervalMs: config.backups.missedCheckIntervalMs }),
        logger,
      );
      const answer = await rt.workflows.checkConnectivity("hello", `connectivity-check-${process.pid}-${Date.now()}`);
      logger.info({ answer }, "temporal worker connected");
    }
    const app = opts.api ? await startApp({ config, logger, services: rt.services, events: rt.events.bus, limiter: rt.limiter, availability: rt.availability }) : undefined;
    if (app) {
      console.log(`${startBanner(config.env)}\n  Console:  ${app.url}/\n  GraphQL:  ${app.graphqlUrl}\n  WebSocket: ${app.wsUrl}\n  GraphiQL: ${app.url}/graphiql\n  Health:   ${app.url}/healthz  ${app.url}/readyz`);
    }
    if (worker && !app) console.log(`ReClo worker is running on task queue "${config.temporal.taskQueue}" at ${config.temporal.address} (${config.env} mode).`);
    onShutdown(logger, async () => {
      await app?.stop();
      await worker?.shutdown();
      await rt.close();
    });
  } catch (err) {
    await worker?.shutdown().catch(() => {});
    await rt.close();
    fatal(logger, err);
  }
}

/** The first line printed once the API listens: which mode, and what that means when it is not production. */
export function startBanner(env: Config["env"]): string {
  const note: Record<Config["env"], string> = {
    production: "",
    development: "\n  Development mode (NODE_ENV=development): errors carry stack traces and internal messages; do not expose this server.",
    test: "\n  Test mode (NODE_ENV=test): for the test suite only.",
  };
  return `ReClo is running in ${env} mode.${note[env]}`;
}

if (require.main === module) {
  void main({ api: true, worker: configOrExit().runWorker });
}
