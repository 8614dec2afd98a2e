import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { ReCloClient } from "../src/client/graphql-client";
import { LogInDocument, SignUpDocument } from "../src/client/generated/graphql";
import type { RecoverySnapshot } from "../src/events/topics";
import { Child, PRODUCT_NODE_ARGS, p50p99max, sleep, watchRedis, type LoadReport, type MemoryReport } from "./ipc";
import type { ApiInfo, PublishArgs, PublishResult, SeedArgs, Via } from "./api-process";
import type { ClientStats, OpenResult, SubSpec } from "./client-process";

/**
 * Subscription fan-out benchmark: N concurrent `recoveryProgress` subscribers on ONE API process.
 * By default the product path: progress written by RecoveryProgress.progress (UPDATE, throttle,
 * SELECT, Redis publish) in a publisher process separate from the API (like a worker), one event
 * per recovery per second. Goals: p99 write → delivery < 50 ms, no event lost (a coalesced
 * intermediate value is counted, the latest one must arrive), < 30 KB API RSS per subscriber.
 *
 *   node -r @swc-node/register bench/subscriptions.ts [--subscribers N] [--events K] [--help]
 *
 * The API under test runs in a child process (bench/api-process.ts: createRuntime + startApp on
 * 127.0.0.1, ephemeral port, database reclo_bench); subscribers are graphql-ws clients in one or
 * more client processes (bench/client-process.ts). Prints delivery latency p50/p90/p99/max, losses,
 * API memory per subscriber, and the ratio against a 10-subscriber baseline measured in the same run.
 */

const GOAL_P99_MS = 50;
const GOAL_KB_PER_SUBSCRIBER = 30;
const GOAL_DELIVERIES_PER_SECOND = 10_000;

const HELP = `Usage: node -r @swc-node/register bench/subscriptions.ts [options]

  --subscribers N     concurrent subscribers on the one API process (default 10000)
  --events K          events each subscriber receives in the measured phase (default 20)
  --per-recovery P    subscribers per recovery, like browser tabs (default 10; 1 = one recovery each)
  --baseline B        subscribers in the baseline phase (default 10)
  --interval-ms LIST  one event per recovery every MS ms; a comma list measures each rate in turn on the
                      same N open subscribers, slowest first (default 1000: 1,000 events/s, 10,000 deliveries/s)
  --settle-rounds S   rounds at each rate published and delivered before its measured rounds, not counted
                      (default 3: the seconds right after opening N subscriptions and the forced GCs of the
                      memory reading are printed as a phase of their own)
  --burst             publish each round's events all at once (default: spread evenly over the interval)
  --via progress|pubsub
                      progress (default): RecoveryProgress.progress() (UPDATE, throttle, SELECT, publish), the
                      product path; pubsub: events.publish(RECOVERY_CHANGED, id, snapshot) directly, no DB
                      write, no throttle (synthetic)
  --pubsub redis|memory|both
                      redis (default): API with REDIS_URL, events published by a separate publisher process
                      (like a worker); memory: in-process pub/sub, events published inside the API process
  --redis-url URL     (default redis://127.0.0.1:6379)
  --client-procs C    processes holding the subscribers (default 1)
  --batch S           subscriptions opened concurrently (default 500)
  --users U           users owning the recoveries (default 10)
  --database-url URL  (default mysql://root@127.0.0.1:3306/reclo_bench; created and migrated if missing)
  --timeout-s S       the whole run stops after S seconds (default 600)
  --json FILE         also write the results as JSON
  --profile-dir DIR   write a CPU profile of the API process (and of the publisher process) during each measured phase to DIR
  --heap-sampling     with --profile-dir: sample what survives young-generation GCs instead of CPU
  --heap-snapshot-dir DIR  write API heap snapshots with 0 and with N subscribers to DIR
  --api-node-args="…" more node flags for the API process, after the ones the product starts with
                      (PRODUCT_NODE_ARGS in bench/ipc.ts = scripts/lib.sh run_product's; a later V8
                      flag wins), e.g. --api-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
`;

const { values: opts } = parseArgs({
  options: {
    subscribers: { type: "string", default: "10000" },
    events: { type: "string", default: "20" },
    "per-recovery": { type: "string", default: "10" },
    baseline: { type: "string", default: "10" },
    "interval-ms": { type: "string", default: "1000" },
    "settle-rounds": { type: "string", default: "3" },
    burst: { type: "boolean", default: false },
    via: { type: "string", default: "progress" },
    pubsub: { type: "string", default: "redis" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    "client-procs": { type: "string", default: "1" },
    batch: { type: "string", default: "500" },
    users: { type: "string", default: "10" },
    "database-url": { type: "string", default: "mysql://root@127.0.0.1:3306/reclo_bench" },
    "timeout-s": { type: "string", default: "600" },
    json: { type: "string" },
    "api-node-args": { type: "string", default: "" },
    "profile-dir": { type: "string" },
    "heap-snapshot-dir": { type: "string" },
    "heap-sampling": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
  strict: true,
});

if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function int(name: keyof typeof opts, min: number): number {
  const v = Number(opts[name]);
  if (!Number.isInteger(v) || v < min) {
    console.error(`--${name}: expected a whole number ≥ ${min}, got "${opts[name]}"`);
    process.exit(2);
  }
  return v;
}

const N = int("subscribers", 1);
const K = int("events", 1);
const P = int("per-recovery", 1);
const B = Math.min(int("baseline", 1), N);
const settleRounds = int("settle-rounds", 0);
const intervals = String(opts["interval-ms"])
  .split(",")
  .map((v) => Number(v.trim()))
  .sort((a, b) => b - a);
if (!intervals.length || intervals.some((v) => !Number.isInteger(v) || v < 1)) {
  console.error(`--interval-ms: whole numbers of milliseconds, comma-separated, got "${opts["interval-ms"]}"`);
  process.exit(2);
}
const fastest = Math.min(...intervals);
const clientProcs = int("client-procs", 1);
const batch = int("batch", 1);
const U = int("users", 1);
const timeoutS = int("timeout-s", 10);
const via = opts.via as Via;
if (via !== "pubsub" && via !== "progress") {
  console.error(`--via: pubsub or progress, got "${opts.via}"`);
  process.exit(2);
}
if (via === "progress" && fastest < 300) {
  console.error("--via progress needs --interval-ms ≥ 300 (RecoveryProgress coalesces progress within 250 ms per recovery)");
  process.exit(2);
}
const transports = opts.pubsub === "both" ? (["memory", "redis"] as const) : opts.pubsub === "memory" || opts.pubsub === "redis" ? [opts.pubsub as "memory" | "redis"] : undefined;
if (!transports) {
  console.error(`--pubsub: memory, redis or both, got "${opts.pubsub}"`);
  process.exit(2);
}
for (const [name, url] of [
  ["database-url", opts["database-url"]],
  ["redis-url", opts["redis-url"]],
] as const) {
  const host = new URL(url).hostname;
  if (host !== "127.0.0.1" && host !== "localhost") {
    console.error(`--${name}: the bench only talks to 127.0.0.1, got ${host}`);
    process.exit(2);
  }
}
const R = Math.ceil(N / P);

// ---------------------------------------------------------------- helpers
function killAll(): void {
  for (const c of Child.all) c.kill();
}

function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Dist {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

function dist(values: Float64Array): Dist {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { count: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), p999: percentile(s, 99.9), max: s.length ? s[s.length - 1]! : NaN, mean: sum / s.length };
}

function concat(parts: (Float64Array | undefined)[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + (p?.length ?? 0), 0));
  let at = 0;
  for (const p of parts) {
    if (!p) continue;
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const ms = (v: number) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms` : "n/a");
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const log = (line: string) => process.stdout.write(line + "\n");

interface PhaseResult {
  name: string;
  intervalMs: number;
  /** subscribers × events per second each. */
  offeredPerSecond: number;
  subscribers: number;
  recoveries: number;
  expected: number;
  delivered: number;
  lost: number;
  coalesced: number;
  extra: number;
  outOfOrder: number;
  errors: number;
  unexpectedCloses: number;
  latency: Dist;
  publish: PublishResult;
  deliveriesPerSecond: number;
  /** API process CPU time (user + system) per delivered event. */
  apiCpuMicrosPerDelivery: number;
  api: LoadReport;
  publisher?: LoadReport;
  clients: LoadReport[];
  samples: string[];
}

interface OpenPhase {
  opened: number;
  failed: number;
  seconds: number;
  perSecond: number;
  firstSnapshot: Dist;
  errors: string[];
  api: LoadReport;
  clients: LoadReport[];
}

interface ScenarioResult {
  transport: "memory" | "redis";
  subscribers: number;
  recoveries: number;
  perRecovery: number;
  events: number;
  burst: boolean;
  via: Via;
  clientProcs: number;
  open: OpenPhase;
  memory: {
    zero: MemoryReport;
    loaded: MemoryReport;
    /** All subscribers closed (and 2 s later), before any further event. */
    afterClose: MemoryReport;
    socketsAfterClose: number;
    /** Then one more event published per recovery (nobody subscribed). */
    afterOneMoreEvent: MemoryReport;
    /** Still N subscribers, after the measured rates: the steady state, without opening's transient garbage. */
    steady: MemoryReport;
    steadyLater: MemoryReport;
    steadyReduced: MemoryReport;
    afterCloseReduced: MemoryReport;
    socketsLoaded: number; perSubscriberHeapBytes: number; perSubscriberRssBytes: number; clientRssPerSubscriberBytes: number;
    /** The same from `steady`: what the goal is judged on. */
    steadyPerSubscriberHeapBytes: number;
    steadyPerSubscriberRssBytes: number };
  baseline: PhaseResult;
  loads: (PhaseResult & { p99Ratio: number; pass: boolean })[];
}

// ---------------------------------------------------------------- one scenario
async function scenario(transport: "memory" | "redis"): Promise<ScenarioResult> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: opts["database-url"],
    MIGRATE_ON_START: "true",
    REDIS_URL: transport === "redis" ? opts["redis-url"] : "",
    // Thousands of subscribers share a few users here: lift the per-user cap (a production guard).
    WS_MAX_SUBSCRIPTIONS_PER_USER: process.env.WS_MAX_SUBSCRIPTIONS_PER_USER ?? "1000000",
    // Every bench user is created from 127.0.0.1.
    SIGNUP_MAX_PER_ADDRESS: "1000000",
    LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "100000",
  };
  delete env.PUBLIC_URL;
  delete env.RECLO_BENCH_NOFILE;

  log(`\n=== pub/sub ${transport}: starting the API process${transport === "redis" ? ", a publisher process" : ""} and ${clientProcs} client process(es)`);
  const started = await Promise.all([
    Child.start<ApiInfo>("api", "api-process.ts", { env, product: true, nodeArgs: opts["api-node-args"].split(" ").filter(Boolean) }),
    transport === "redis" ? Child.start<ApiInfo>("publisher", "api-process.ts", { env, product: true, args: ["--role=publisher"] }) : Promise.resolve(undefined),
    ...Array.from({ length: clientProcs }, (_, i) => Child.start<{ pid: number }>(`client${i + 1}`, "client-process.ts", { env })),
  ]);
  const [apiStarted, pubStarted, ...clientStarted] = started as [{ child: Child; info: ApiInfo }, { child: Child; info: ApiInfo } | undefined, ...{ child: Child; info: { pid: number } }[]];
  const api = apiStarted.child;
  const publisher = pubStarted?.child ?? api;
  const clients = clientStarted.map((c) => c.child);
  const { graphqlUrl, wsUrl } = apiStarted.info;
  if (!graphqlUrl || !wsUrl) throw new Error("the API process reported no URL");
  log(`API pid ${apiStarted.info.pid} at ${wsUrl} (pub/sub ${apiStarted.info.transport})${pubStarted ? `, publisher pid ${pubStarted.info.pid}` : ""}, clients pid ${clientStarted.map((c) => c.info.pid).join(", ")}`);

  // Users through the API (signUp), recoveries through the service layer in the API process.
  const anonymous = new ReCloClient({ url: graphqlUrl });
  const stamp = `${Date.now().toString(36)}${process.pid}`;
  const accounts = await Promise.all(
    Array.from({ length: U }, async (_, i) => {
      const username = `bench${stamp}u${i}`;
      const input = { username, email: `${username}@example.com`, password: "correct horse battery staple" };
      await anonymous.request(SignUpDocument, { input });
      const { logIn } = await anonymous.request(LogInDocument, { input: { email: input.email, password: input.password } });
      return { id: logIn.user.id, token: logIn.token };
    }),
  );
  const userIds = accounts.map((a) => a.id);
  try {
    const t0 = performance.now();
    const recoveries = await api.call<RecoverySnapshot[]>("seed", { userIds, recoveries: R, enterStep: via === "progress" } satisfies SeedArgs, 600_000);
    log(`seeded ${U} users, ${R} recoveries in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const tokenOf = new Map(accounts.map((a) => [a.id, a.token]));
    // Subscriber i watches recovery i mod R, with its owner's token.
    const specs: SubSpec[] = Array.from({ length: N }, (_, i) => {
      const r = recoveries[i % R]!;
      return { token: tokenOf.get(r.userId)!, recoveryId: r.id };
    });

    const open = async (list: SubSpec[], label: string): Promise<OpenPhase> => {
      await Promise.all([api, ...clients].map((c) => c.call("windowStart")));
      if (opts["profile-dir"] && !opts["heap-sampling"]) await api.call("profileStart");
      const t = performance.now();
      let opened = 0;
      let failed = 0;
      const first: Float64Array[] = [];
      const errors: string[] = [];
      let reported = 0;
      for (let at = 0; at < list.length; at += batch) {
        const slice = list.slice(at, at + batch);
        const results = await Promise.all(
          clients.map((c, ci) =>
            c.call<OpenResult>("open", { url: wsUrl, subs: slice.filter((_, k) => (at + k) % clients.length === ci), timeoutMs: 60_000 }, 120_000),
          ),
        );
        for (const r of results) {
          opened += r.opened;
          failed += r.failed;
          first.push(r.firstSnapshotMs);
          for (const e of r.errors) if (errors.length < 5) errors.push(e);
        }
        if (list.length >= 2000 && (opened + failed - reported >= list.length / 10 || at + batch >= list.length)) {
          reported = opened + failed;
          log(`  ${label}: ${opened} open, ${failed} failed of ${list.length} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
        }
      }
      const seconds = (performance.now() - t) / 1000;
      const [apiLoad, ...clientLoads] = await Promise.all([api, ...clients].map((c) => c.call<LoadReport>("windowEnd")));
      if (opts["profile-dir"] && !opts["heap-sampling"]) {
        fs.mkdirSync(opts["profile-dir"], { recursive: true });
        await api.call<string>("profileStop", { file: path.resolve(opts["profile-dir"], `api-${transport}-open-${label}-${list.length}.cpuprofile`) });
      }
      return { opened, failed, seconds, perSecond: opened / seconds, firstSnapshot: dist(concat(first)), errors, api: apiLoad!, clients: clientLoads };
    };

    const closeAll = async () => {
      await Promise.all(clients.map((c) => c.call("close", undefined, 60_000)));
    };

    const measure = async (name: string, subscribers: number, targets: RecoverySnapshot[], rounds: number, intervalMs: number): Promise<PhaseResult> => {
      const expected = subscribers * rounds;
      await Promise.all(clients.map((c) => c.call("reset")));
      await Promise.all([api, publisher, ...clients].map((c) => c.call("windowStart")));
      if (opts["profile-dir"]) await api.call(opts["heap-sampling"] ? "heapSamplingStart" : "profileStart");
      if (opts["profile-dir"] && !opts["heap-sampling"] && publisher !== api) await publisher.call("profileStart");
      // Via progress through Redis: the bench itself watches the channels, as the API does, to time the publishing side.
      const watch = via === "progress" && transport === "redis" ? await watchRedis(opts["redis-url"]) : undefined;
      const publish = await publisher.call<PublishResult>(
        "publish",
        { targets, rounds, intervalMs, burst: opts.burst, via } satisfies PublishArgs,
        (rounds * intervalMs + 120_000) * 2,
      );
      if (watch) {
        // The last events' SELECT and PUBLISH follow their UPDATE: until they were seen (or 2 s).
        for (let w = 0; w < 200 && watch.seen.length < publish.published; w++) await sleep(10);
        watch.close();
        if (publish.stages) publish.stages.onRedisMs = p50p99max(watch.seen);
      }
      // Drain: until every delivery arrived, or nothing new for 5 s.
      let received = 0;
      let lastChange = performance.now();
      for (;;) {
        const now = (await Promise.all(clients.map((c) => c.call<number>("received")))).reduce((a, b) => a + b, 0);
        if (now !== received) lastChange = performance.now();
        received = now;
        if (received >= expected || performance.now() - lastChange > 5000) break;
        await sleep(50);
      }
      const [apiLoad, pubLoad, ...clientLoads] = await Promise.all([api, publisher, ...clients].map((c) => c.call<LoadReport>("windowEnd")));
      if (opts["profile-dir"]) {
        fs.mkdirSync(opts["profile-dir"], { recursive: true });
        const file = path.resolve(opts["profile-dir"], `api-${transport}-${name.replace(/ /g, "-")}-${N}.${opts["heap-sampling"] ? "heapprofile" : "cpuprofile"}`);
        log(`  profile: ${await api.call<string>(opts["heap-sampling"] ? "heapSamplingStop" : "profileStop", { file })}`);
        if (!opts["heap-sampling"] && publisher !== api) {
          const pubFile = path.resolve(opts["profile-dir"], `publisher-${transport}-${name.replace(/ /g, "-")}-${N}.cpuprofile`);
          log(`  publisher profile: ${await publisher.call<string>("profileStop", { file: pubFile })}`);
        }
      }
      const stats = await Promise.all(clients.map((c) => c.call<ClientStats>("stats", { expectedPerSub: rounds, finalRound: publish.lastRound, withLatencies: true })));
      const latencies = concat(stats.map((s) => s.latenciesMs));
      const sum = (f: (s: ClientStats) => number) => stats.reduce((n, s) => n + f(s), 0);
      const delivered = sum((s) => s.received);
      return {
        name,
        intervalMs,
        offeredPerSecond: (subscribers * 1000) / intervalMs,
        subscribers,
        recoveries: targets.length,
        expected,
        delivered,
        lost: sum((s) => s.lost),
        coalesced: sum((s) => s.coalesced),
        extra: sum((s) => s.extra),
        outOfOrder: sum((s) => s.outOfOrder),
        errors: sum((s) => s.errors + s.completedEarly),
        unexpectedCloses: sum((s) => s.unexpectedCloses),
        latency: dist(latencies),
        publish,
        deliveriesPerSecond: delivered / (apiLoad!.wallMs / 1000),
        apiCpuMicrosPerDelivery: (apiLoad!.cpuPercent / 100) * apiLoad!.wallMs * 1000 / Math.max(1, delivered),
        api: apiLoad!,
        publisher: publisher === api ? undefined : pubLoad,
        clients: clientLoads,
        samples: stats.flatMap((s) => [...s.errorSample, ...s.closeSample]).slice(0, 5),
      };
    };

    const baselineSpecs = specs.slice(0, B);
    const baselineTargets = [...new Map(baselineSpecs.map((s) => [s.recoveryId, recoveries.find((r) => r.id === s.recoveryId)!])).values()];

    // Warm-up (JIT, connection pools), then memory with no subscriber.
    await open(baselineSpecs, "warm-up");
    await measure("warm-up", B, baselineTargets, 3, fastest);
    await closeAll();
    await sleep(1000);
    const zero = (await api.call<{ memory: MemoryReport; sockets: number }>("mem")).memory;
    const snapshotDir = opts["heap-snapshot-dir"];
    if (snapshotDir) {
      fs.mkdirSync(snapshotDir, { recursive: true });
      log(`  heap snapshot: ${await api.call<string>("heapSnapshot", { file: path.resolve(snapshotDir, `api-${transport}-0.heapsnapshot`) }, 600_000)}`);
    }

    // Baseline: B subscribers.
    const baseOpen = await open(baselineSpecs, "baseline");
    if (baseOpen.failed) throw new Error(`baseline: ${baseOpen.failed} subscriptions failed: ${baseOpen.errors.join("; ")}`);
    const baseline = await measure("baseline", B, baselineTargets, K, fastest);
    printPhase(baseline);
    await closeAll();
    await sleep(1000);

    // Load: N subscribers.
    log(`opening ${N} subscriptions (${R} recoveries, ${P} per recovery) in batches of ${batch}…`);
    const loadOpen = await open(specs, "load");
    log(
      `opened ${loadOpen.opened}/${N} in ${loadOpen.seconds.toFixed(1)} s (${loadOpen.perSecond.toFixed(0)}/s); subscribe → initial snapshot p50 ${ms(loadOpen.firstSnapshot.p50)}, p99 ${ms(loadOpen.firstSnapshot.p99)}; ` +
        `API CPU ${loadOpen.api.cpuPercent.toFixed(0)}%, client CPU ${loadOpen.clients.map((c) => c.cpuPercent.toFixed(0) + "%").join("+")}` +
        (loadOpen.failed ? `; ${loadOpen.failed} FAILED: ${loadOpen.errors.join("; ")}` : ""),
    );
    const loadedMem = await api.call<{ memory: MemoryReport; sockets: number }>("mem");
    if (snapshotDir) log(`  heap snapshot: ${await api.call<string>("heapSnapshot", { file: path.resolve(snapshotDir, `api-${transport}-${N}.heapsnapshot`) }, 600_000)}`);
    const clientMems = await Promise.all(clients.map((c) => c.call<{ memory: MemoryReport; subscribers: number }>("mem")));
    const opened = loadOpen.opened;
    const loads: ScenarioResult["loads"] = [];
    for (const intervalMs of intervals) {
      // Not measured: the rate's first seconds, right after the subscriptions opened (or the rate
      // changed) and the memory readings forced full GCs in the API and the clients. Printed.
      if (settleRounds) printPhase(await measure(`settle ${intervalMs} ms, not counted`, opened, recoveries, settleRounds, intervalMs));
      const load = await measure(`load ${intervalMs} ms`, opened, recoveries, K, intervalMs);
      printPhase(load);
      const lossFree = load.lost === 0 && load.errors === 0 && load.unexpectedCloses === 0 && load.publish.failed === 0;
      loads.push({ ...load, p99Ratio: load.latency.p99 / baseline.latency.p99, pass: lossFree && load.latency.p99 < GOAL_P99_MS });
    }
    const steady = (await api.call<{ memory: MemoryReport; sockets: number }>("mem")).memory;
    // What an operator sees a while later with the subscribers still open and idle (V8's memory reducer, page unmapper ran).
    await sleep(10_000);
    const steadyLater = (await api.call<{ memory: MemoryReport; sockets: number }>("mem")).memory;
    // The same N subscribers after a memory-reducing GC (diagnosis: what is V8's page pool and old-space fragmentation).
    const steadyReduced = (await api.call<{ memory: MemoryReport; sockets: number }>("mem", { reduce: true }, 120_000)).memory;
    await closeAll();
    await sleep(2000);
    const afterClose = await api.call<{ memory: MemoryReport; sockets: number }>("mem");
    // Leak check: is what the closed subscriptions held released only by a later event?
    await publisher.call<PublishResult>("publish", { targets: recoveries, rounds: 1, intervalMs: Math.max(fastest, 300), burst: false, via } satisfies PublishArgs, 120_000);
    await sleep(1000);
    const afterEvent = (await api.call<{ memory: MemoryReport; sockets: number }>("mem")).memory;
    const afterCloseReduced = (await api.call<{ memory: MemoryReport; sockets: number }>("mem", { reduce: true }, 120_000)).memory;

    const heapOf = (m: MemoryReport) => m.heapUsed + m.external;
    const result: ScenarioResult = {
      transport,
      subscribers: opened,
      recoveries: R,
      perRecovery: P,
      events: K,
      burst: opts.burst,
      via,
      clientProcs,
      open: loadOpen,
      memory: {
        zero,
        loaded: loadedMem.memory,
        afterClose: afterClose.memory,
        socketsAfterClose: afterClose.sockets,
        afterOneMoreEvent: afterEvent,
        socketsLoaded: loadedMem.sockets,
        perSubscriberHeapBytes: (heapOf(loadedMem.memory) - heapOf(zero)) / Math.max(1, opened),
        perSubscriberRssBytes: (loadedMem.memory.rss - zero.rss) / Math.max(1, opened),
        steady,
        steadyLater,
        steadyReduced,
        afterCloseReduced,
        steadyPerSubscriberHeapBytes: (heapOf(steady) - heapOf(zero)) / Math.max(1, opened),
        steadyPerSubscriberRssBytes: (steady.rss - zero.rss) / Math.max(1, opened),
        clientRssPerSubscriberBytes: clientMems.reduce((n, c) => n + c.memory.rss, 0) / Math.max(1, opened),
      },
      baseline,
      loads,
    };
    printSummary(result);
    return result;
  } finally {
    await api.call("cleanup", { userIds }, 120_000).catch((err: unknown) => log(`cleanup failed: ${err instanceof Error ? err.message : err}`));
    await Promise.all([...clients, api, ...(pubStarted ? [pubStarted.child] : [])].map((c) => c.stop()));
  }
}

function printPhase(p: PhaseResult): void {
  const l = p.latency;
  log(
    `[${p.name}] ${p.subscribers} subscribers, ${p.recoveries} recoveries, offered ${p.offeredPerSecond.toFixed(0)}/s: delivered ${p.delivered}/${p.expected}` +
      (p.lost || p.extra || p.outOfOrder || p.errors || p.unexpectedCloses ? ` (LOST ${p.lost}, extra ${p.extra}, out of order ${p.outOfOrder}, errors ${p.errors}, closes ${p.unexpectedCloses})` : " (no loss)") +
      (p.coalesced ? ` (${p.coalesced} intermediate values coalesced, latest delivered)` : "") +
      ` | latency p50 ${ms(l.p50)} p90 ${ms(l.p90)} p99 ${ms(l.p99)} p99.9 ${ms(l.p999)} max ${ms(l.max)}` +
      ` | ${p.deliveriesPerSecond.toFixed(0)} deliveries/s, API ${p.apiCpuMicrosPerDelivery.toFixed(0)} µs CPU each` +
      ` | API CPU ${p.api.cpuPercent.toFixed(0)}%, loop delay p99 ${ms(p.api.eventLoopDelayP99Ms)} max ${ms(p.api.eventLoopDelayMaxMs)}` +
      (p.publisher ? ` | publisher CPU ${p.publisher.cpuPercent.toFixed(0)}%` : "") +
      ` | client CPU ${p.clients.map((c) => c.cpuPercent.toFixed(0) + "%").join("+")}, loop delay p99 ${p.clients.map((c) => ms(c.eventLoopDelayP99Ms)).join("/")}` +
      (p.publish.stages
        ? ` | publishing side p50/p99/max: UPDATE ${p.publish.stages.writeMs.map(ms).join("/")}, on Redis ${(p.publish.stages.onRedisMs ?? []).map(ms).join("/")}`
        : "") +
      ` | publish schedule lag max ${ms(p.publish.maxScheduleLagMs)}${p.publish.failed ? `, ${p.publish.failed} publish failures: ${p.publish.firstError}` : ""}` +
      ` | load average ${os.loadavg()[0]!.toFixed(2)}`,
  );
  if (p.samples.length) log(`  samples: ${p.samples.join(" | ")}`);
}

function printSummary(r: ScenarioResult): void {
  const m = r.memory;
  const heapOf = (x: MemoryReport) => x.heapUsed + x.external;
  const heapKb = m.perSubscriberHeapBytes / 1024;
  const rssKb = m.perSubscriberRssBytes / 1024;
  log(`--- result (pub/sub ${r.transport}, ${r.subscribers} subscribers on one API process, ${r.recoveries} recoveries, ${r.events} events per subscriber per rate)`);
  log(`baseline (${r.baseline.subscribers} subscribers): p50 ${ms(r.baseline.latency.p50)}, p99 ${ms(r.baseline.latency.p99)}, max ${ms(r.baseline.latency.max)}`);
  for (const l of r.loads) {
    log(
      `one event per recovery every ${l.intervalMs} ms (${l.offeredPerSecond.toFixed(0)} deliveries/s offered, ${l.deliveriesPerSecond.toFixed(0)}/s achieved): ` +
        `p50 ${ms(l.latency.p50)}, p99 ${ms(l.latency.p99)}, max ${ms(l.latency.max)}; p99 ratio vs baseline ${l.p99Ratio.toFixed(1)}x; ` +
        `lost ${l.lost}/${l.expected}; goal p99 < ${GOAL_P99_MS} ms: ${l.pass ? "PASS" : "MISS"}`,
    );
  }
  const passing = r.loads.filter((l) => l.pass);
  log(
    passing.length
      ? `highest rate meeting the latency goal: ${Math.max(...passing.map((l) => l.offeredPerSecond)).toFixed(0)} deliveries/s (${r.subscribers} subscribers)`
      : `no measured rate met the latency goal at ${r.subscribers} subscribers`,
  );
  log(`API memory after GC: 0 subscribers heap+external ${mb(heapOf(m.zero))}, RSS ${mb(m.zero.rss)}; ${r.subscribers} subscribers heap+external ${mb(heapOf(m.loaded))}, RSS ${mb(m.loaded.rss)} (${m.socketsLoaded} sockets)`);
  log(
    `after closing all (${m.socketsAfterClose} sockets left): heap+external ${mb(heapOf(m.afterClose))} = ${kb((heapOf(m.afterClose) - heapOf(m.zero)) / Math.max(1, r.subscribers))} per closed subscriber still held; ` +
      `after one more event per recovery: ${mb(heapOf(m.afterOneMoreEvent))} = ${kb((heapOf(m.afterOneMoreEvent) - heapOf(m.zero)) / Math.max(1, r.subscribers))} per closed subscriber`,
  );
  const steadyHeapKb = m.steadyPerSubscriberHeapBytes / 1024;
  const steadyRssKb = m.steadyPerSubscriberRssBytes / 1024;
  log(`memory per subscriber (API process): right after opening heapUsed+external ${heapKb.toFixed(1)} KB, RSS ${rssKb.toFixed(1)} KB; after the measured rates (steady state, RSS ${mb(m.steady.rss)}) heapUsed+external ${steadyHeapKb.toFixed(1)} KB, RSS ${steadyRssKb.toFixed(1)} KB (client side, not counted: RSS ${kb(m.clientRssPerSubscriberBytes)} per subscriber)`);
  {
    // Where the RSS goes (Linux): V8's committed heap vs the rest of anonymous memory, and the same
    // subscribers after a memory-reducing GC (old generation compacted, V8's page pool returned).
    const d = (x: MemoryReport, k: string) => x.detail?.[k] ?? NaN;
    const per = (a: number, b: number) => kb((a - b) / Math.max(1, r.subscribers));
    const v8p = (x: MemoryReport) => d(x, "v8.total_physical_size");
    const other = (x: MemoryReport) => d(x, "Anonymous") - v8p(x);
    log(
      `RSS per subscriber, steady state: V8 heap committed ${per(v8p(m.steady), v8p(m.zero))} (of it used ${per(m.steady.heapUsed, m.zero.heapUsed)}), ` +
        `other anonymous memory (V8 page pool, malloc) ${per(other(m.steady), other(m.zero))}; 10 s later, idle: RSS ${per(m.steadyLater.rss, m.zero.rss)}; ` +
        `after a memory-reducing GC: RSS ${per(m.steadyReduced.rss, m.afterCloseReduced.rss)} (${mb(m.steadyReduced.rss)} with ${r.subscribers} subscribers vs ${mb(m.afterCloseReduced.rss)} with none, both reduced; that GC took ${ms(d(m.steadyReduced, "reduceGcMs"))})`,
    );
  }
  log(`subscribe: ${r.open.opened} in ${r.open.seconds.toFixed(1)} s (${r.open.perSecond.toFixed(0)}/s), initial snapshot p50 ${ms(r.open.firstSnapshot.p50)}, p99 ${ms(r.open.firstSnapshot.p99)}`);
  // The goals, judged at the fastest measured rate (the default: 10,000 deliveries/s).
  const top = r.loads.reduce((a, b) => (b.offeredPerSecond > a.offeredPerSecond ? b : a));
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  const fast = top.offeredPerSecond >= GOAL_DELIVERIES_PER_SECOND;
  const lost = r.loads.reduce((n, l) => n + l.lost + l.errors + l.unexpectedCloses + l.publish.failed, 0);
  const coalesced = r.loads.reduce((n, l) => n + l.coalesced, 0);
  const load = os.loadavg().map((v) => v.toFixed(2)).join(" ");
  log(`goals (pub/sub ${r.transport}, via ${r.via}, ${r.subscribers} subscribers, ${r.recoveries} recoveries; load average ${load}):`);
  log(
    `  ${verdict(fast && top.latency.p99 < GOAL_P99_MS)}  p99 write → delivery < ${GOAL_P99_MS} ms at ${GOAL_DELIVERIES_PER_SECOND} deliveries/s: ` +
      `p99 ${ms(top.latency.p99)} at ${top.offeredPerSecond.toFixed(0)}/s offered (${top.deliveriesPerSecond.toFixed(0)}/s achieved, API ${top.apiCpuMicrosPerDelivery.toFixed(0)} µs CPU per delivery)` +
      (fast ? "" : ` — below the goal's rate (it needs 10,000 subscribers at one event per recovery per second)`),
  );
  log(`  ${verdict(lost === 0)}  no event lost: ${lost} lost of ${r.loads.reduce((n, l) => n + l.expected, 0)} (errors and closed subscriptions included); ${coalesced} intermediate values coalesced with the latest delivered`);
  log(
    `  ${verdict(steadyRssKb < GOAL_KB_PER_SUBSCRIBER)}  API RSS < ${GOAL_KB_PER_SUBSCRIBER} KB per subscriber (steady state): ${steadyRssKb.toFixed(1)} KB (heap+external ${steadyHeapKb.toFixed(1)} KB; right after opening: RSS ${rssKb.toFixed(1)} KB, heap+external ${heapKb.toFixed(1)} KB)`,
  );
}

// ---------------------------------------------------------------- main
async function run(): Promise<void> {
  const deadline = setTimeout(() => {
    console.error(`bench: stopped after the overall timeout of ${timeoutS} s`);
    killAll();
    process.exit(3);
  }, timeoutS * 1000);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
  log(
    `ReClo subscription bench: ${N} subscribers over ${R} recoveries (${P} per recovery), ${K} events each at one event per recovery every ${intervals.join(", ")} ms ` +
      `${opts.burst ? "(burst)" : "(spread)"}, via ${via === "pubsub" ? "events.publish (no DB write, no throttle)" : "RecoveryProgress.progress (UPDATE + publish)"}; ` +
      `baseline ${B} subscribers; API node flags "${[...PRODUCT_NODE_ARGS, opts["api-node-args"]].filter(Boolean).join(" ")}"; ${os.cpus().length} CPUs, Node ${process.version}, ulimit -n ${softNofile}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  );
  // Rough duration: start-up, warm-up + baseline, opening (~150/s here), the measured rates, drains.
  const estimate = transports!.length * (30 + (3 + K) * (fastest / 1000) + N / 150 + K * intervals.reduce((a, b) => a + b, 0) / 1000 + 10 * (intervals.length + 2));
  log(`estimated duration ~${Math.ceil(estimate / 60)} min (stops by itself after ${timeoutS} s${estimate > timeoutS ? ": RAISE --timeout-s, the estimate is above it" : ""})`);
  const results: ScenarioResult[] = [];
  let failed = false;
  try {
    for (const t of transports!) results.push(await scenario(t));
  } catch (err) {
    failed = true;
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    killAll();
    clearTimeout(deadline);
  }
  if (opts.json) {
    const replacer = (_k: string, v: unknown) => (v instanceof Float64Array ? undefined : v);
    fs.writeFileSync(opts.json, JSON.stringify({ options: { N, K, P, B, intervals, settleRounds, burst: opts.burst, via, clientProcs, batch }, results }, replacer, 2));
    log(`wrote ${opts.json}`);
  }
  process.exit(failed ? 1 : 0);
}

// ---------------------------------------------------------------- file descriptors
// Each subscriber is one socket in the API process (plus ~100 for its pools, Temporal, stdio) and
// one in a client process. Raising the soft limit up to the hard limit needs no privilege; above
// it needs CAP_SYS_RESOURCE (root in a container may not have it).
const nofileNeeded = N + 500;
const ulimit = (flag: string) => Number(execFileSync("bash", ["-c", `ulimit ${flag}`]).toString().trim()) || Infinity;
const softNofile = ulimit("-Sn");
const hardNofile = ulimit("-Hn");
if (softNofile < nofileNeeded) {
  if (process.env.RECLO_BENCH_NOFILE) {
    console.error(`bench: ulimit -n is ${softNofile} after raising it to ${process.env.RECLO_BENCH_NOFILE}; need ${nofileNeeded}`);
    process.exit(2);
  }
  const flag = hardNofile >= nofileNeeded ? "-Sn" : "-n";
  console.error(`bench: ulimit -n ${softNofile} < ${nofileNeeded} needed for ${N} subscribers: re-running under bash with ulimit ${flag} ${nofileNeeded}`);
  const again = spawn(
    "bash",
    ["-c", `ulimit ${flag} "$0" || { echo "bench: cannot raise the open-files limit above the hard limit ${hardNofile} here (no CAP_SYS_RESOURCE): at most ~${hardNofile - 500} subscribers per API process on this machine" >&2; exit 2; }; exec "$@"`, String(nofileNeeded), process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: "inherit", env: { ...process.env, RECLO_BENCH_NOFILE: String(nofileNeeded) } },
  );
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => again.kill(sig));
  again.on("exit", (code) => process.exit(code ?? 1));
} else {
  void run();
}
