import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { Child, sleep, type LoadReport } from "./ipc";
import type { GraphqlApiInfo, Seeded } from "./graphql-api-process";
import type { BaselineInfo } from "./graphql-baseline";
import { LOCKED_BACKUPS_BUCKET } from "../test/helpers/buckets";

/**
 * GraphQL HTTP path against raw SQL: the same three read operations, with a bearer token, served by
 *
 *   - api: the real API (bench/graphql-api-process.ts: createRuntime + startApp as src/main.ts
 *     builds them, NODE_ENV=production, LOG_LEVEL as deployed — `info` unless you pass --log-level —
 *     with its log going to a file, like a deployment's log collector), and
 *   - raw: a plain node:http + mysql2 server (bench/graphql-baseline.ts) doing the same session
 *     lookup and the same queries and answering the same JSON;
 *
 * each in its own process, loaded by `wrk` (50 connections), alternating which goes first, several
 * rounds; medians per row. Goal: api req/s ≥ 0.5 × raw req/s on the backups row.
 *
 *   npm run bench:graphql            # = node -r @swc-node/register bench/graphql.ts [--help]
 */

const GOAL_RATIO = 0.5;

const HELP = `Usage: node -r @swc-node/register bench/graphql.ts [options]

  --rounds R          measured rounds; each runs every row against api and raw (default 3)
  --duration-s S      wrk duration of one measurement (default 7)
  --warmup-s S        wrk warm-up per row and server before the rounds (default 3)
  --connections C     wrk connections (default 50)
  --threads T         wrk threads (default 2)
  --rows LIST         backups,me,recovery (default all three)
  --only api|raw      measure one side only (no ratio; for profiling)
  --log-level L       LOG_LEVEL of the API (default: unset = the product default, info)
  --redis-url URL     REDIS_URL of the API, as a deployment with separate API and worker has it
                      (default redis://127.0.0.1:6379; "" for none: in-process events)
  --database-url URL  (default mysql://root@127.0.0.1:3306/reclo_bench; created and migrated if missing)
  --api-node-args="…" extra node flags for the API process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  --profile FILE      write a CPU profile (.cpuprofile) of the API process over the measured rounds
  --json FILE         also write the results as JSON
`;

const { values: opts } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    "duration-s": { type: "string", default: "7" },
    "warmup-s": { type: "string", default: "3" },
    connections: { type: "string", default: "50" },
    threads: { type: "string", default: "2" },
    rows: { type: "string", default: "backups,me,recovery" },
    only: { type: "string" },
    "log-level": { type: "string" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    "database-url": { type: "string", default: "mysql://root@127.0.0.1:3306/reclo_bench" },
    "api-node-args": { type: "string", default: "" },
    json: { type: "string" },
    profile: { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
});
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const int = (name: keyof typeof opts, min: number): number => {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min) {
    console.error(`--${name}: expected a whole number ≥ ${min}, got "${opts[name]}"`);
    process.exit(2);
  }
  return v;
};
const ROUNDS = int("rounds", 1);
const DURATION = int("duration-s", 1);
const WARMUP = int("warmup-s", 0);
const CONNECTIONS = int("connections", 1);
const THREADS = int("threads", 1);
const only = opts.only as "api" | "raw" | undefined;
if (only && only !== "api" && only !== "raw") {
  console.error(`--only: api or raw, got "${only}"`);
  process.exit(2);
}

// ---------------------------------------------------------------- the operations
const BACKUPS = `query Backups($first: Int) { backups(first: $first) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id kind status sourceName imageSize createdAt } } } }`;
const ME = `query Me { me { id username email } }`;
const RECOVERY = `query Recovery($id: ID!) { recovery(id: $id) { id state totalProgress events { step status message createdAt } } }`;
type RowName = "backups" | "me" | "recovery";
const rowNames = opts.rows.split(",").map((r) => r.trim()) as RowName[];
if (!rowNames.length || rowNames.some((r) => !["backups", "me", "recovery"].includes(r))) {
  console.error(`--rows: a comma list of backups, me, recovery; got "${opts.rows}"`);
  process.exit(2);
}
const bodyOf = (row: RowName, seeded: Seeded): string =>
  JSON.stringify(
    row === "backups"
      ? { operationName: "Backups", query: BACKUPS, variables: { first: 20 } }
      : row === "me"
        ? { operationName: "Me", query: ME, variables: {} }
        : { operationName: "Recovery", query: RECOVERY, variables: { id: seeded.recoveryId } },
  );

// ---------------------------------------------------------------- helpers
const log = (line: string) => process.stdout.write(line + "\n");
const loadavg = () =>
  os
    .loadavg()
    .map((v) => v.toFixed(2))
    .join(" ");
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function ensureWrk(): string {
  try {
    return execFileSync("sh", ["-c", "command -v wrk"], { encoding: "utf8" }).trim();
  } catch {
    log("wrk is not installed: installing the Debian package (apt-get install -y wrk)…");
    execFileSync("apt-get", ["install", "-y", "wrk"], { stdio: "inherit" });
    return execFileSync("sh", ["-c", "command -v wrk"], { encoding: "utf8" }).trim();
  }
}

/**
 * The backups bucket the production-mode API is given. Production refuses a backups bucket without
 * S3 Object Lock (OBJECT_LOCK_MODE defaults to COMPLIANCE there), and the development bucket
 * `reclo-backups` has none: the bench uses the locked bucket scripts/start.sh and the test setup use
 * (created, or given its lock, by `scripts/ensure-buckets.mjs --object-lock`), unless S3_BACKUPS_BUCKET is set.
 * Never run that script on `reclo-backups` itself: the tests rely on it being unversioned.
 */
function ensureLockedBackupsBucket(): string {
  const bucket = process.env.S3_BACKUPS_BUCKET ?? LOCKED_BACKUPS_BUCKET;
  execFileSync(process.execPath, [path.resolve(__dirname, "../scripts/ensure-buckets.mjs"), "--object-lock"], { stdio: "inherit", env: { ...process.env, S3_BACKUPS_BUCKET: bucket } });
  return bucket;
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  /** Non-2xx answers and socket errors: must be 0. */
  failures: number;
  load1: number;
  /** CPU time of the server process per answered request (user + system), microseconds. */
  cpuUsPerRequest: number;
}

/** wrk's latency lines are like "50%  12.34ms" (us / ms / s). */
function msOf(v: string, unit: string): number {
  const n = Number(v);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : unit === "m" ? n * 60_000 : n;
}

async function runWrk(wrk: string, url: string, luaFile: string, seconds: number): Promise<WrkResult> {
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(wrk, [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency", "-s", luaFile, url], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    p.stdout.on("data", (d: Buffer) => (text += d.toString()));
    p.stderr.on("data", (d: Buffer) => (text += d.toString()));
    p.on("error", reject);
    p.on("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}:\n${text}`))));
  });
  const lat = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(out);
    if (!m) throw new Error(`wrk output without the ${p}% latency:\n${out}`);
    return msOf(m[1]!, m[2]!);
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  if (!rps || !total) throw new Error(`unexpected wrk output:\n${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  return { rps: Number(rps[1]), p50: lat("50"), p99: lat("99"), requests: Number(total[1]), failures: non2xx + sockErrors, load1: os.loadavg()[0]!, cpuUsPerRequest: NaN };
}

function luaScript(dir: string, name: string, body: string, token: string): string {
  const file = path.join(dir, `${name}.lua`);
  fs.writeFileSync(
    file,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ${token}"\n`,
  );
  return file;
}

async function post(url: string, body: string, token: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body });
  return { status: res.status, json: await res.json() };
}

// ---------------------------------------------------------------- main
async function main(): Promise<number> {
  const started = Date.now();
  const wrk = ensureWrk();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-bench-graphql-"));
  const apiLog = path.join(tmp, "api.log");
  const apiLogFd = fs.openSync(apiLog, "w");
  log(`bench/graphql: ${os.cpus().length} CPU(s), load average ${loadavg()} (1/5/15 min) at start; wrk -t${THREADS} -c${CONNECTIONS}, ${ROUNDS} round(s) × ${DURATION} s per row and server`);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: opts["database-url"],
    MIGRATE_ON_START: "true",
    REDIS_URL: opts["redis-url"],
    S3_ENDPOINT: process.env.S3_ENDPOINT ?? "http://127.0.0.1:7070",
    S3_BACKUPS_BUCKET: ensureLockedBackupsBucket(),
  };
  delete env.PUBLIC_URL;
  delete env.LOG_LEVEL;
  if (opts["log-level"]) env.LOG_LEVEL = opts["log-level"];

  let api: Child | undefined;
  let raw: Child | undefined;
  let seeded: Seeded | undefined;
  try {
    const a = await Child.start<GraphqlApiInfo>("api", "graphql-api-process.ts", { env, stdoutFd: apiLogFd, product: true, nodeArgs: opts["api-node-args"].split(" ").filter(Boolean) });
    api = a.child;
    log(`api: pid ${a.info.pid} at ${a.info.graphqlUrl} (NODE_ENV=production, LOG_LEVEL=${a.info.logLevel}, log → ${apiLog}, events over ${a.info.transport})`);
    const r = await Child.start<BaselineInfo>("raw", "graphql-baseline.ts", { env });
    raw = r.child;
    log(`raw: pid ${r.info.pid} at ${r.info.url} (node:http + mysql2, pool ${env.DATABASE_POOL_SIZE ?? 10} as the API's)`);

    seeded = await api.call<Seeded>("seed", { backups: 25, events: 8 });
    log(`seeded: 1 user, 1 session, 25 COMPLETED backups, 1 recovery with 8 timeline events`);

    const targets = { api: a.info.graphqlUrl, raw: r.info.url };
    // Same answer from both for every row, or the comparison means nothing.
    for (const row of rowNames) {
      const body = bodyOf(row, seeded);
      const [x, y] = await Promise.all([post(targets.api, body, seeded.token), post(targets.raw, body, seeded.token)]);
      if (x.status !== 200 || y.status !== 200 || !isDeepStrictEqual(x.json, y.json)) {
        log(`row ${row}: the two servers answer differently:\napi (${x.status}): ${JSON.stringify(x.json)}\nraw (${y.status}): ${JSON.stringify(y.json)}`);
        return 2;
      }
    }
    log(`checked: api and raw answer the same JSON for ${rowNames.join(", ")}`);

    const sides: ("api" | "raw")[] = only ? [only] : ["api", "raw"];
    const scripts = Object.fromEntries(rowNames.map((row) => [row, luaScript(tmp, row, bodyOf(row, seeded!), seeded!.token)])) as Record<RowName, string>;
    if (WARMUP > 0) {
      for (const row of rowNames) for (const side of sides) await runWrk(wrk, targets[side], scripts[row], WARMUP);
      log(`warmed up (${WARMUP} s per row and server)`);
    }

    const results: Record<string, WrkResult[]> = {};
    const logBytesBefore = fs.fstatSync(apiLogFd).size;
    let apiRequests = 0;
    if (opts.profile) await api.call("profileStart");
    for (let round = 1; round <= ROUNDS; round++) {
      for (const row of rowNames) {
        const order = round % 2 === 1 ? sides : [...sides].reverse();
        for (const side of order) {
          const server = side === "api" ? api : raw;
          await server.call("windowStart");
          const res = await runWrk(wrk, targets[side], scripts[row], DURATION);
          const w = await server.call<LoadReport>("windowEnd");
          res.cpuUsPerRequest = ((w.cpuPercent / 100) * w.wallMs * 1000) / res.requests;
          if (side === "api") apiRequests += res.requests;
          (results[`${row}/${side}`] ??= []).push(res);
          log(
            `round ${round} ${row.padEnd(8)} ${side}: ${res.rps.toFixed(0).padStart(6)} req/s  p50 ${res.p50.toFixed(1).padStart(6)} ms  p99 ${res.p99.toFixed(1).padStart(6)} ms  CPU ${res.cpuUsPerRequest.toFixed(0).padStart(5)} µs/req` +
              `${res.failures ? `  FAILURES ${res.failures}` : ""}  load ${res.load1.toFixed(2)}`,
          );
        }
      }
    }
    const logBytes = fs.fstatSync(apiLogFd).size - logBytesBefore;
    if (opts.profile) log(`API CPU profile of the rounds: ${await api.call<string>("profileStop", { file: path.resolve(opts.profile) })}`);

    // The same answers after the load as before it (nothing degraded into errors under load).
    for (const row of rowNames) {
      const body = bodyOf(row, seeded);
      for (const side of sides) {
        const x = await post(targets[side], body, seeded.token);
        if (x.status !== 200 || (x.json as { errors?: unknown }).errors) throw new Error(`${side} ${row} after the load: ${x.status} ${JSON.stringify(x.json)}`);
      }
    }

    log(`\nmedians of ${ROUNDS} round(s), ${DURATION} s each, wrk -t${THREADS} -c${CONNECTIONS}; load average ${loadavg()} at the end`);
    log(`row        api req/s  api p50  api p99  api CPU µs/req   raw req/s  raw p50  raw p99  raw CPU µs/req   ratio  CPU ratio  load(1m)`);
    let pass = true;
    const summary: Record<string, unknown> = {};
    for (const row of rowNames) {
      const m = (side: string, k: keyof WrkResult) => (results[`${row}/${side}`] ? median(results[`${row}/${side}`]!.map((x) => x[k])) : NaN);
      const ratio = m("api", "rps") / m("raw", "rps");
      const cpuRatio = m("raw", "cpuUsPerRequest") / m("api", "cpuUsPerRequest");
      const load = median(sides.flatMap((s) => results[`${row}/${s}`]!.map((x) => x.load1)));
      const failures = sides.reduce((n, s) => n + results[`${row}/${s}`]!.reduce((k, x) => k + x.failures, 0), 0);
      summary[row] = { api: results[`${row}/api`], raw: results[`${row}/raw`], ratio, cpuRatio };
      const f = (v: number, w: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : "-").padStart(w);
      log(`${row.padEnd(9)} ${f(m("api", "rps"), 10)} ${f(m("api", "p50"), 8, 1)} ${f(m("api", "p99"), 8, 1)} ${f(m("api", "cpuUsPerRequest"), 15)}  ${f(m("raw", "rps"), 10)} ${f(m("raw", "p50"), 8, 1)} ${f(m("raw", "p99"), 8, 1)} ${f(m("raw", "cpuUsPerRequest"), 15)}  ${f(ratio, 6, 2)} ${f(cpuRatio, 10, 2)}  ${f(load, 8, 2)}${failures ? `  (${failures} failed requests)` : ""}`);
      if (failures) pass = false;
    }
    log(`(ratio = api req/s ÷ raw req/s; CPU ratio = raw CPU per request ÷ api CPU per request: the same comparison, less sensitive to other load on the machine)`);
    if (!only) {
      for (const row of rowNames) {
        const ratio = summary[row] as { ratio: number };
        const verdict = ratio.ratio >= GOAL_RATIO ? "PASS" : "MISS";
        if (row === "backups") {
          if (verdict === "MISS") pass = false;
          log(`${verdict}  backups: api/raw = ${ratio.ratio.toFixed(2)} (goal ≥ ${GOAL_RATIO})`);
        } else log(`${verdict}  ${row}: api/raw = ${ratio.ratio.toFixed(2)} (reported; the goal is on the backups row)`);
      }
    }
    log(`api log: ${apiRequests ? (logBytes / apiRequests).toFixed(0) : "-"} bytes per request at LOG_LEVEL=${a.info.logLevel} (${(logBytes / 1024 / 1024).toFixed(1)} MiB during the rounds); run took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ loadavg: os.loadavg(), rounds: ROUNDS, durationS: DURATION, results: summary }, null, 2));
    return pass ? 0 : 1;
  } finally {
    if (seeded && api) await api.call("cleanup", { userIds: [seeded.userId] }).catch((err: unknown) => log(`cleanup failed: ${String(err)}`));
    await Promise.all([api?.stop(), raw?.stop()]);
    fs.closeSync(apiLogFd);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const killAll = () => {
  for (const c of Child.all) c.kill();
};
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    killAll();
    await sleep(10);
    process.exit(2);
  },
);
