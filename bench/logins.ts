import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import { parseArgs } from "node:util";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { Child, sleep, type LoadReport } from "./ipc";
import type { LoginApiInfo } from "./logins-api";
import { hashConcurrencyOf, threadPoolSizeFor } from "../src/config";

/**
 * The login storm (issue 14, part 3): does argon2 work starve the API's event loop?
 *
 * Starts the real API in a child process (bench/logins-api.ts: createRuntime + startApp as
 * src/main.ts builds them, the configured argon2id parameters, its own database) and then, for
 * --rounds rounds, an idle phase followed by a storm phase, then one more idle phase:
 *
 * - all the time: an authenticated `me { id }` stream at a steady rate (open loop: latency is
 *   measured from when each request was due, so a stalled server is not hidden by fewer requests);
 * - storm: --parallel logIn calls at once (closed loop), from many loopback source addresses
 *   (127.0.0.2, 127.0.0.3, …, each used for fewer attempts than the per-address limit) and for
 *   many accounts (a fifth of them unknown e-mail addresses: the dummy-verify path), so the rate
 *   limits are not what is measured. An answer "busy" (RATE_LIMITED, reason BUSY) is counted and
 *   the client waits its retryAfterSeconds, as a client should.
 *
 * Per phase the API reports its event-loop delay (monitorEventLoopDelay inside the API process)
 * and CPU. Goals, during the storm: event-loop delay p99 < 20 ms, and `me` p99 < 2× its idle p99.
 */

const { values: opts } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    "storm-s": { type: "string", default: "30" },
    "idle-s": { type: "string", default: "10" },
    parallel: { type: "string", default: "20" },
    "me-rate": { type: "string", default: "20" },
    accounts: { type: "string", default: "24" },
    "unknown-every": { type: "string", default: "5" },
    "database-url": { type: "string", default: "mysql://root@127.0.0.1:3306/reclo_bench_logins" },
    /** Extra environment for the API process, e.g. --api-env ARGON2_CONCURRENCY=2 (repeatable). */
    "api-env": { type: "string", multiple: true, default: [] },
    "timeout-s": { type: "string", default: "420" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (opts.help) {
  console.log(`npm run bench:logins -- [--rounds 3] [--storm-s 30] [--idle-s 10] [--parallel 20] [--me-rate 20]
    [--accounts 24] [--unknown-every 5] [--database-url URL] [--api-env NAME=VALUE ...] [--timeout-s 420] [--json FILE]`);
  process.exit(0);
}

const ROUNDS = Number(opts.rounds);
const STORM_MS = Number(opts["storm-s"]) * 1000;
const IDLE_MS = Number(opts["idle-s"]) * 1000;
const PARALLEL = Number(opts.parallel);
const ME_RATE = Number(opts["me-rate"]);
const ACCOUNTS = Number(opts.accounts);
const UNKNOWN_EVERY = Number(opts["unknown-every"]);
const PASSWORD = "correct horse battery staple";
/** Attempts per source address, below LOGIN_MAX_ATTEMPTS_PER_ADDRESS (50 per 15 min by default). */
const PER_ADDRESS = 40;

const log = (line: string) => console.log(line);
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ");

// ---------------------------------------------------------------- HTTP client
interface GqlAnswer {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

const agents = new Map<string, http.Agent>();
function agentFor(localAddress: string): http.Agent {
  let agent = agents.get(localAddress);
  if (!agent) {
    // Idle sockets are dropped after 2 s, well before the server's keep-alive timeout (5 s): a
    // request on a socket the server is closing at that moment fails with ECONNRESET.
    agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 2000 });
    agents.set(localAddress, agent);
  }
  return agent;
}

function post(url: URL, localAddress: string, body: object, token?: string): Promise<GqlAnswer> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        localAddress,
        agent: agentFor(localAddress),
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as GqlAnswer);
          } catch {
            reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString("utf8").slice(0, 200)}`));
          }
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const LOG_IN = "mutation LogIn($input: LogInInput!) { logIn(input: $input) { token } }";
const SIGN_UP = "mutation SignUp($input: SignUpInput!) { signUp(input: $input) { accepted } }";
const ME = "query Me { me { id } }";

// ---------------------------------------------------------------- statistics
const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const median = (xs: number[]) => pct(xs, 50);
const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 2 : 1)} ms` : "-");

interface LoginCounts {
  ok: number;
  /** Verified and refused: the unknown e-mail addresses (the dummy verify). */
  badCredentials: number;
  busy: number;
  /** RATE_LIMITED for another reason (a per-address or per-account limit: the bench's fault). */
  rateLimited: number;
  errors: number;
  firstError?: string;
  latencies: number[];
}

interface PhaseResult {
  kind: "idle" | "storm";
  round: number;
  wallMs: number;
  api: LoadReport;
  me: { sent: number; failed: number; latencies: number[]; firstError?: string };
  logins?: LoginCounts;
  loadAvg: string;
  clientEldP99Ms: number;
}

// ---------------------------------------------------------------- run
async function run(): Promise<number> {
  log(`bench:logins — ${os.cpus().length} CPUs (availableParallelism ${os.availableParallelism()}), Node ${process.version}, load average at start ${load()}`);
  const apiEnv: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: opts["database-url"],
    MIGRATE_ON_START: "true",
    // Rate limits in the API's memory, fresh for each run (the addresses below stay under them).
    REDIS_URL: "",
  };
  // The production argon2id parameters: whatever src/config.ts defaults to, never weakened here.
  for (const k of Object.keys(apiEnv)) if (k.startsWith("ARGON2_")) delete apiEnv[k];
  delete apiEnv.PUBLIC_URL;
  for (const kv of opts["api-env"]) {
    const i = kv.indexOf("=");
    if (i < 1) throw new Error(`--api-env expects NAME=VALUE, got ${kv}`);
    apiEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  // What src/threadpool.ts sets at start-up; here the TypeScript compiler has started the pool
  // before that module runs, so the size must be in the environment.
  apiEnv.UV_THREADPOOL_SIZE ||= String(threadPoolSizeFor(hashConcurrencyOf(apiEnv)));

  const { child: api, info } = await Child.start<LoginApiInfo>("api", "logins-api.ts", { env: apiEnv, product: true });
  log(
    `API pid ${info.pid} at ${info.graphqlUrl}; argon2id m=${info.argon2.memoryCost} KiB t=${info.argon2.timeCost} p=${info.argon2.parallelism}; ` +
      `UV_THREADPOOL_SIZE=${info.uvThreadpoolSize ?? "(unset: 4)"} (${info.libuvThreads ?? "?"} libuv threads running); hash queue ${info.hashQueue ? JSON.stringify(info.hashQueue) : "(none)"}`,
  );
  const url = new URL(info.graphqlUrl);
  const userIds: string[] = [];
  try {
    // Accounts, each signed up from its own address (127.0.1.x: the sign-up limit is per address).
    const stamp = `${Date.now().toString(36)}${process.pid}`;
    const emails = Array.from({ length: ACCOUNTS }, (_, i) => `lb${stamp}u${i}@example.com`);
    for (let i = 0; i < ACCOUNTS; i += 4)
      await Promise.all(
        emails.slice(i, i + 4).map(async (email, j) => {
          const answer = await post(url, `127.0.1.${i + j + 1}`, { query: SIGN_UP, variables: { input: { username: email.split("@")[0], email, password: PASSWORD } } });
          if (answer.errors?.length) throw new Error(`signUp: ${answer.errors[0]!.message}`);
        }),
      );
    // The `me` stream's sessions (two accounts of their own, logged in from 127.0.0.1).
    const meTokens: string[] = [];
    for (let i = 0; i < 2; i++) {
      const email = `lb${stamp}me${i}@example.com`;
      const s = await post(url, `127.0.2.${i + 1}`, { query: SIGN_UP, variables: { input: { username: email.split("@")[0], email, password: PASSWORD } } });
      if (s.errors?.length) throw new Error(`signUp: ${s.errors[0]!.message}`);
      const l = await post(url, "127.0.0.1", { query: LOG_IN, variables: { input: { email, password: PASSWORD } } });
      const token = (l.data?.logIn as { token?: string } | undefined)?.token;
      if (!token) throw new Error(`logIn: ${JSON.stringify(l.errors)}`);
      meTokens.push(token);
      const me = await post(url, "127.0.0.1", { query: ME }, token);
      userIds.push((me.data?.me as { id: string }).id);
    }
    for (const email of emails) {
      const l = await post(url, "127.0.0.1", { query: LOG_IN, variables: { input: { email, password: PASSWORD } } });
      const token = (l.data?.logIn as { token?: string } | undefined)?.token;
      if (!token) throw new Error(`logIn: ${JSON.stringify(l.errors)}`);
      const me = await post(url, "127.0.0.1", { query: ME }, token);
      userIds.push((me.data?.me as { id: string }).id);
    }
    log(`${ACCOUNTS} storm accounts + 2 for the me stream signed up; load average ${load()}`);

    // Source addresses for the storm: 127.0.0.2 … 127.0.0.254, then 127.0.3.x, each for PER_ADDRESS attempts.
    let attempt = 0;
    const addressOf = (n: number) => {
      const k = Math.floor(n / PER_ADDRESS);
      return k < 253 ? `127.0.0.${k + 2}` : `127.0.${3 + Math.floor((k - 253) / 254)}.${1 + ((k - 253) % 254)}`;
    };

    const clientEld = monitorEventLoopDelay({ resolution: 1 });
    clientEld.enable();

    const phase = async (kind: "idle" | "storm", round: number, durationMs: number): Promise<PhaseResult> => {
      clientEld.reset();
      await api.call("windowStart");
      const t0 = performance.now();
      const end = t0 + durationMs;
      const me = { sent: 0, failed: 0, latencies: [] as number[], firstError: undefined as string | undefined };
      const meInFlight: Promise<void>[] = [];
      const meLoop = (async () => {
        const interval = 1000 / ME_RATE;
        for (let i = 0; ; i++) {
          const due = t0 + i * interval;
          if (due >= end) break;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          me.sent++;
          meInFlight.push(
            post(url, "127.0.0.1", { query: ME }, meTokens[i % meTokens.length]).then(
              (a) => {
                if (a.errors?.length || !(a.data?.me as { id?: string } | undefined)?.id) {
                  me.failed++;
                  me.firstError ??= JSON.stringify(a.errors);
                } else me.latencies.push(performance.now() - due);
              },
              (err: unknown) => {
                me.failed++;
                me.firstError ??= err instanceof Error ? err.message : String(err);
              },
            ),
          );
        }
      })();
      let logins: LoginCounts | undefined;
      if (kind === "storm") {
        const counts: LoginCounts = { ok: 0, badCredentials: 0, busy: 0, rateLimited: 0, errors: 0, latencies: [] };
        logins = counts;
        const worker = async () => {
          while (performance.now() < end) {
            const n = attempt++;
            const unknown = UNKNOWN_EVERY > 0 && n % UNKNOWN_EVERY === UNKNOWN_EVERY - 1;
            const email = unknown ? `lb${stamp}nobody${n}@example.com` : emails[n % emails.length]!;
            const started = performance.now();
            try {
              const a = await post(url, addressOf(n), { query: LOG_IN, variables: { input: { email, password: PASSWORD } } });
              const err = a.errors?.[0];
              if (!err && (a.data?.logIn as { token?: string } | undefined)?.token) {
                counts.ok++;
                counts.latencies.push(performance.now() - started);
              } else if (err?.extensions?.code === "UNAUTHENTICATED" && unknown) {
                counts.badCredentials++;
                counts.latencies.push(performance.now() - started);
              } else if (err?.extensions?.code === "RATE_LIMITED" && err.extensions.reason === "BUSY") {
                counts.busy++;
                const retry = Number(err.extensions.retryAfterSeconds ?? err.extensions.retryAfter ?? 1);
                await sleep(Math.min(Math.max(0, end - performance.now()), retry * 1000));
              } else if (err?.extensions?.code === "RATE_LIMITED") {
                counts.rateLimited++;
                counts.firstError ??= `${err.message} ${JSON.stringify(err.extensions)}`;
              } else {
                counts.errors++;
                counts.firstError ??= JSON.stringify(a.errors ?? a.data);
              }
            } catch (err) {
              counts.errors++;
              counts.firstError ??= err instanceof Error ? err.message : String(err);
            }
          }
        };
        await Promise.all(Array.from({ length: PARALLEL }, worker));
      }
      await meLoop;
      await Promise.all(meInFlight);
      const apiReport = await api.call<LoadReport>("windowEnd");
      const result: PhaseResult = { kind, round, wallMs: performance.now() - t0, api: apiReport, me, logins, loadAvg: load(), clientEldP99Ms: Math.max(0, clientEld.percentile(99) / 1e6 - 1) };
      const l = result.logins;
      log(
        `${kind.padEnd(5)} ${round}: ${(result.wallMs / 1000).toFixed(1)} s; API event-loop delay p99 ${ms(apiReport.eventLoopDelayP99Ms)} (max ${ms(apiReport.eventLoopDelayMaxMs)}), CPU (all threads) ${apiReport.cpuPercent.toFixed(0)} %; ` +
          `me p50 ${ms(median(me.latencies))} p99 ${ms(pct(me.latencies, 99))} (${me.latencies.length} ok, ${me.failed} failed)` +
          (l
            ? `; logins ${((l.ok + l.badCredentials) / (result.wallMs / 1000)).toFixed(1)}/s answered (${l.ok} ok, ${l.badCredentials} unknown e-mail), ${l.busy} busy, ${l.rateLimited} rate-limited, ${l.errors} errors, latency p50 ${ms(median(l.latencies))} p99 ${ms(pct(l.latencies, 99))}`
            : "") +
          `; bench client event-loop p99 ${ms(result.clientEldP99Ms)}; load average ${result.loadAvg}`,
      );
      if (me.firstError) log(`  first me error: ${me.firstError}`);
      if (l?.firstError) log(`  first login error: ${l.firstError}`);
      return result;
    };

    const phases: PhaseResult[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      phases.push(await phase("idle", r, IDLE_MS));
      phases.push(await phase("storm", r, STORM_MS));
    }
    phases.push(await phase("idle", ROUNDS + 1, IDLE_MS));

    // ---------------------------------------------------------------- summary
    const idle = phases.filter((p) => p.kind === "idle");
    const storm = phases.filter((p) => p.kind === "storm");
    const idleMe = idle.flatMap((p) => p.me.latencies);
    const stormMe = storm.flatMap((p) => p.me.latencies);
    const stormEld = median(storm.map((p) => p.api.eventLoopDelayP99Ms));
    const idleEld = median(idle.map((p) => p.api.eventLoopDelayP99Ms));
    const idleP99 = pct(idleMe, 99);
    const stormP99 = pct(stormMe, 99);
    const sum = (f: (l: LoginCounts) => number) => storm.reduce((a, p) => a + f(p.logins!), 0);
    const stormSeconds = storm.reduce((a, p) => a + p.wallMs, 0) / 1000;
    const answered = sum((l) => l.ok + l.badCredentials);
    const loginLat = storm.flatMap((p) => p.logins!.latencies);
    const failures = sum((l) => l.errors + l.rateLimited) + [...idle, ...storm].reduce((a, p) => a + p.me.failed, 0);

    log("");
    log("phase   API event-loop delay p99   API CPU*  me p50     me p99     logins answered/s   busy   load average");
    for (const [name, ps] of [["idle", idle], ["storm", storm]] as const) {
      const lat = ps.flatMap((p) => p.me.latencies);
      const ans = name === "storm" ? `${(answered / stormSeconds).toFixed(1)}`.padStart(17) : "-".padStart(17);
      log(
        `${name.padEnd(7)} ${ms(median(ps.map((p) => p.api.eventLoopDelayP99Ms))).padStart(24)}   ${`${median(ps.map((p) => p.api.cpuPercent)).toFixed(0)} %`.padStart(7)}   ${ms(median(lat)).padStart(8)}   ${ms(pct(lat, 99)).padStart(8)}   ${ans}   ${(name === "storm" ? String(sum((l) => l.busy)) : "-").padStart(4)}   ${ps.map((p) => p.loadAvg.split(" ")[0]).join(", ")}`,
      );
    }
    log("* the API process, all threads (argon2 included; 100 % = one core); medians of the phases");
    log(
      `storm logins: ${sum((l) => l.ok)} ok + ${sum((l) => l.badCredentials)} unknown e-mail (dummy verify) = ${answered} answered in ${stormSeconds.toFixed(0)} s = ${(answered / stormSeconds).toFixed(1)}/s; ` +
        `${sum((l) => l.busy)} refused as busy; ${sum((l) => l.rateLimited)} rate-limited otherwise; ${sum((l) => l.errors)} errors; latency p50 ${ms(median(loginLat))} p99 ${ms(pct(loginLat, 99))}`,
    );
    const eldPass = stormEld < 20;
    const mePass = stormP99 < 2 * idleP99;
    log(`${eldPass ? "PASS" : "MISS"}  API event-loop delay p99 during the storm ${ms(stormEld)} (median of ${storm.length} storms: ${storm.map((p) => ms(p.api.eventLoopDelayP99Ms)).join(", ")}; idle ${ms(idleEld)}); goal < 20 ms`);
    log(`${mePass ? "PASS" : "MISS"}  me p99 during the storm ${ms(stormP99)} = ${(stormP99 / idleP99).toFixed(2)}× its idle p99 ${ms(idleP99)} (${stormMe.length} / ${idleMe.length} requests); goal < 2×`);
    log(`load average at the end ${load()}`);
    if (failures) log(`FAILURES: ${failures} requests failed (errors or unexpected rate limits) — see above`);

    if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ options: opts, info, phases: phases.map((p) => ({ ...p, me: { ...p.me, latencies: undefined }, logins: p.logins && { ...p.logins, latencies: undefined } })) }, null, 2));
    return failures ? 2 : eldPass && mePass ? 0 : 1;
  } finally {
    await api.call("cleanup", { userIds }).catch((err: unknown) => log(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`));
    await api.stop();
    for (const a of agents.values()) a.destroy();
  }
}

const deadline = setTimeout(() => {
  console.error(`bench:logins: still running after ${opts["timeout-s"]} s; stopping`);
  for (const c of Child.all) c.kill();
  process.exit(3);
}, Number(opts["timeout-s"]) * 1000);
deadline.unref();
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    for (const c of Child.all) c.kill();
    process.exit(130);
  });

run().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench:logins failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    for (const c of Child.all) c.kill();
    process.exit(2);
  },
);
