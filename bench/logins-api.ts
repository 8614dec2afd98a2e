// As src/main.ts: the libuv thread pool sized before anything uses it (through @swc-node/register
// the pool has already started: bench/logins.ts sets UV_THREADPOOL_SIZE in this process's environment).
import { threadPool } from "../src/threadpool";
import "reflect-metadata";
import fs from "node:fs";
import { inArray } from "drizzle-orm";
import { loadConfig } from "../src/config";
import { createLogger } from "../src/logger";
import { createRuntime } from "../src/runtime";
import { startApp } from "../src/server/app";
import { users } from "../src/db/schema";
import { LoadWindow, serve, exitAfter } from "./ipc";

/**
 * The API process of bench/logins.ts: the real API (createRuntime + startApp, exactly as
 * src/main.ts builds it, with the configured argon2id parameters) on an ephemeral port. It measures
 * its own event-loop delay (perf_hooks.monitorEventLoopDelay) and CPU per window, on request.
 */

export interface LoginApiInfo {
  pid: number;
  graphqlUrl: string;
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  /** What this process runs with (unset: libuv's default, 4). */
  uvThreadpoolSize: string | undefined;
  /** libuv worker threads actually running (Linux), after start-up. */
  libuvThreads?: number;
  /** The hashing queue's bounds, when the product has one. */
  hashQueue?: unknown;
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel);
  const rt = await createRuntime(config, logger);
  const app = await startApp({ config, logger, services: rt.services, events: rt.events.bus, limiter: rt.limiter, availability: rt.availability, stopGracePeriodMs: 500 });
  const load = new LoadWindow();

  serve(
    {
      windowStart() {
        load.start();
      },
      windowEnd() {
        return load.end();
      },
      async cleanup(args: { userIds: string[] }) {
        if (args.userIds.length) await rt.database.db.delete(users).where(inArray(users.id, args.userIds));
      },
      stop() {
        exitAfter(async () => {
          await app.stop();
          await rt.close();
        });
      },
    },
    (): LoginApiInfo => ({ pid: process.pid, graphqlUrl: app.graphqlUrl, argon2: config.auth.argon2, uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE, libuvThreads: libuvThreads(), hashQueue: config.auth.hashQueue }),
  );
}

function libuvThreads(): number | undefined {
  if (threadPool.startedEarly === undefined) return undefined;
  return fs.readdirSync("/proc/self/task").filter((tid) => fs.existsSync(`/proc/self/task/${tid}/comm`) && fs.readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() === "libuv-worker").length;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
