import fs from "node:fs";
import { hashConcurrencyOf, threadPoolSizeFor } from "./config";

/**
 * Sizes libuv's thread pool before anything uses it: import this module first in every process
 * entry point (src/main.ts, src/api.ts, src/worker.ts). libuv reads UV_THREADPOOL_SIZE once, when
 * the first piece of work is queued (an async fs call, dns.lookup, zlib, crypto, argon2); after
 * that, changing it does nothing. argon2 shares the pool with fs, dns and zlib: the pool gets the
 * argon2 slots (ARGON2_CONCURRENCY, default availableParallelism() − 1) plus libuv's default 4
 * for the rest (see threadPoolSizeFor in src/config.ts). An operator's own UV_THREADPOOL_SIZE is
 * kept (loadConfig checks that it leaves room beside the argon2 slots).
 *
 * Compiled (`node dist/src/main.js`) this runs before any pool work. Run from TypeScript through
 * @swc-node/register, the compiler has already started the pool (with 4 threads): set
 * UV_THREADPOOL_SIZE in the environment there; `threadPool.startedEarly` tells (main logs it).
 */
const running = libuvWorkers();
if (!process.env.UV_THREADPOOL_SIZE?.trim()) process.env.UV_THREADPOOL_SIZE = String(threadPoolSizeFor(hashConcurrencyOf(process.env)));

export const threadPool = {
  size: Number(process.env.UV_THREADPOOL_SIZE),
  /** Threads the pool already had when this module ran (then `size` did not apply); 0 or undefined otherwise. */
  startedEarly: running,
};

/** libuv's worker threads running now (Linux names them "libuv-worker"); undefined where /proc does not tell. */
function libuvWorkers(): number | undefined {
  if (process.platform !== "linux" || !fs.existsSync("/proc/self/task")) return undefined;
  return fs.readdirSync("/proc/self/task").filter((tid) => {
    const comm = `/proc/self/task/${tid}/comm`;
    // A thread may end between the listing and the read.
    return fs.existsSync(comm) && fs.readFileSync(comm, "utf8").trim() === "libuv-worker";
  }).length;
}
