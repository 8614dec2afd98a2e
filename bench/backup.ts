import "reflect-metadata";
import { execFileSync, spawn } from "node:child_process";
import { randomFillSync, randomInt } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { AbortMultipartUploadCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { getOperationAST } from "graphql";
import { loadConfig, type Config } from "../src/config";
import { createLogger } from "../src/logger";
import { createRuntime, type Runtime } from "../src/runtime";
import { startApp, type RunningApp } from "../src/server/app";
import { ReCloClient, type ClientOptions } from "../src/client/graphql-client";
import { LogInDocument, SignUpDocument } from "../src/client/generated/graphql";
import { chunkSizeFor } from "../src/backups/backup.service";
import { runBackup, type BackupResult } from "../src/cli/backup";
import { createS3Client } from "../src/storage/s3";

/**
 * Backup throughput benchmark: the `reclo backup` engine (runBackup) against a plain
 * `@aws-sdk/lib-storage` multipart upload of the same image file, on the same local S3 server, in
 * the same run; then an incremental after a few percent of the chunks changed; restic as a peer.
 *
 *   node -r @swc-node/register bench/backup.ts [--size-mib 1024] [--change-percent 1] [--help]
 *
 * The API runs in this process (createRuntime + startApp, ephemeral port, LOG_LEVEL warn, database
 * reclo_bench, created and migrated if missing). Every measured row runs --runs times, alternating
 * which of plain/ours goes first; medians are printed. Everything it creates (the image, the S3
 * objects under the bench users' prefixes, the scratch upload, the restic repositories) is removed
 * at the end, also after a failure or the overall timeout. Timing goals live here, never in tests.
 */

const GOAL_FULL_RATIO = 0.8;
/** "Sends ≈ the changed bytes": sent / (bytes of the changed chunks) within these bounds. */
const GOAL_INCR_RATIO: [number, number] = [0.9, 1.1];
const MiB = 1024 * 1024;
/** Bytes flipped in each changed chunk (one 4 KiB "disk block"). */
const FLIP_BYTES = 4096;

const HELP = `Usage: node -r @swc-node/register bench/backup.ts [options]

  --size-mib N          image size in MiB (default 1024)
  --change-percent P    percent of chunks changed before the incremental (default 1; N = ceil(P% of chunks))
  --zero-percent Z      percent of all-zero chunks in the image (default 3; 0 for none)
  --runs R              repetitions of every measured row (default 3; medians are printed)
  --concurrency C       runBackup concurrency (default: the engine's default, 4); a plain-upload row
                        with queueSize C is added when C differs from 4
  --restic auto|off     restic peer rows when restic is on PATH (default auto)
  --database-url URL    (default mysql://root@127.0.0.1:3306/reclo_bench; created and migrated if missing)
  --tmp-dir DIR         where the image is written (default the OS temp dir)
  --timeout-s S         the whole run stops (and cleans up) after S seconds (default 1800)
  --json FILE           also write the raw results as JSON
`;

const { values: opts } = parseArgs({
  options: {
    "size-mib": { type: "string", default: "1024" },
    "change-percent": { type: "string", default: "1" },
    "zero-percent": { type: "string", default: "3" },
    runs: { type: "string", default: "3" },
    concurrency: { type: "string" },
    restic: { type: "string", default: "auto" },
    "database-url": { type: "string", default: "mysql://root@127.0.0.1:3306/reclo_bench" },
    "tmp-dir": { type: "string", default: os.tmpdir() },
    "timeout-s": { type: "string", default: "1800" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
});

if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function num(name: keyof typeof opts, min: number, max: number, integer: boolean): number {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    console.error(`--${name}: expected ${integer ? "a whole number" : "a number"} from ${min} to ${max}, got "${String(opts[name])}"`);
    process.exit(2);
  }
  return v;
}

const sizeMiB = num("size-mib", 16, 64 * 1024, true);
const changePercent = num("change-percent", 0.01, 100, false);
const zeroPercent = num("zero-percent", 0, 50, false);
const runs = num("runs", 1, 20, true);
const concurrency = opts.concurrency === undefined ? undefined : num("concurrency", 1, 64, true);
const timeoutS = num("timeout-s", 30, 24 * 3600, true);
if (opts.restic !== "auto" && opts.restic !== "off") {
  console.error(`--restic: expected auto or off, got "${opts.restic}"`);
  process.exit(2);
}
const ENGINE_DEFAULT_CONCURRENCY = 4;
const engineConcurrency = concurrency ?? ENGINE_DEFAULT_CONCURRENCY;

// ---------------------------------------------------------------------------------------------
// Small helpers

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mib = (bytes: number) => (bytes / MiB).toFixed(bytes < 10 * MiB ? 2 : 1);
const mbps = (bytes: number, s: number) => (bytes / 1e6 / s).toFixed(1);
const secs = (s: number) => s.toFixed(2);

/** CPU seconds (user + system) of a process from /proc, or NaN. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();
function procCpuSeconds(pid: number | null): number {
  if (pid === null) return NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}
function findPid(comm: string): number | null {
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/comm`, "utf8").trim() === comm) return Number(d);
    } catch {
      /* gone */
    }
  }
  return null;
}
const selfCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Wall time and CPU (this process: engine + in-process API; the S3 server) of one measured step. */
interface Measured {
  seconds: number;
  nodeCpu: number;
  s3Cpu: number;
}
async function measure<T>(s3Pid: number | null, fn: () => Promise<T>): Promise<{ value: T; m: Measured }> {
  const c0 = selfCpuSeconds();
  const g0 = procCpuSeconds(s3Pid);
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  return { value, m: { seconds, nodeCpu: selfCpuSeconds() - c0, s3Cpu: procCpuSeconds(s3Pid) - g0 } };
}

// ---------------------------------------------------------------------------------------------
// Instrumentation of the engine: GraphQL calls and chunk PUTs (timed, counted)

interface OpStat {
  count: number;
  ms: number;
  requestBytes: number;
}

class TimedClient extends ReCloClient {
  readonly ops = new Map<string, OpStat>();

  constructor(opts: ClientOptions) {
    super(opts);
  }

  override async request<TResult, TVars>(document: TypedDocumentNode<TResult, TVars>, variables?: TVars): Promise<TResult> {
    const name = getOperationAST(document)?.name?.value ?? "anonymous";
    const t0 = performance.now();
    try {
      return await super.request(document, variables);
    } finally {
      const s = this.ops.get(name) ?? { count: 0, ms: 0, requestBytes: 0 };
      s.count++;
      s.ms += performance.now() - t0;
      s.requestBytes += JSON.stringify(variables ?? {}).length;
      this.ops.set(name, s);
    }
  }
}

interface PutStats {
  count: number;
  bytes: number;
  /** Sum of the PUT durations (request start to response headers). */
  busyMs: number;
  /** Time with at least one PUT in flight. */
  anyInFlightMs: number;
  maxInFlight: number;
  firstStart: number;
  lastEnd: number;
}

function timedFetch(stats: PutStats): typeof fetch {
  let inFlight = 0;
  let since = 0;
  return async (input, init) => {
    if (init?.method !== "PUT") return fetch(input, init);
    const t0 = performance.now();
    if (inFlight++ === 0) since = t0;
    stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    if (stats.firstStart === 0) stats.firstStart = t0;
    try {
      return await fetch(input, init);
    } finally {
      const t1 = performance.now();
      stats.count++;
      stats.busyMs += t1 - t0;
      stats.lastEnd = t1;
      const body = init.body;
      if (body && typeof body === "object" && "byteLength" in body) stats.bytes += (body as { byteLength: number }).byteLength;
      if (--inFlight === 0) stats.anyInFlightMs += t1 - since;
    }
  };
}

/** Server-side time of the API's service methods (this process's instances, wrapped by the bench). */
const serverOps = new Map<string, OpStat>();

function instrument(obj: object, method: string, label: string): void {
  const target = obj as Record<string, unknown>;
  const orig = target[method];
  if (typeof orig !== "function") throw new Error(`cannot instrument ${label}: not a method`);
  target[method] = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
    const t0 = performance.now();
    try {
      return await (orig as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    } finally {
      const s = serverOps.get(label) ?? { count: 0, ms: 0, requestBytes: 0 };
      s.count++;
      s.ms += performance.now() - t0;
      serverOps.set(label, s);
    }
  };
}

interface OursRun {
  result: BackupResult;
  m: Measured;
  ops: Record<string, OpStat>;
  server: Record<string, OpStat>;
  puts: PutStats;
  startedAt: number;
  /** Event-loop delay of this process (engine + in-process API) during the run, ms. */
  loopDelay: { p50: number; p99: number; max: number };
}

// ---------------------------------------------------------------------------------------------
// The image

interface Image {
  file: string;
  size: number;
  chunkSize: number;
  chunkCount: number;
  zeroChunks: Set<number>;
}

function generateImage(dir: string, size: number, zeroPct: number): Image {
  const chunkSize = chunkSizeFor(size);
  const chunkCount = Math.ceil(size / chunkSize);
  const nZero = zeroPct > 0 ? Math.min(chunkCount - 1, Math.ceil((zeroPct / 100) * chunkCount)) : 0;
  const zeroChunks = new Set<number>();
  while (zeroChunks.size < nZero) zeroChunks.add(randomInt(chunkCount));
  const file = path.join(dir, "image.raw");
  const buf = Buffer.allocUnsafe(chunkSize);
  const fd = fs.openSync(file, "w");
  try {
    for (let i = 0; i < chunkCount; i++) {
      const n = Math.min(chunkSize, size - i * chunkSize);
      const b = buf.subarray(0, n);
      if (zeroChunks.has(i)) b.fill(0);
      else randomFillSync(b);
      let off = 0;
      while (off < n) off += fs.writeSync(fd, b, off, n - off, i * chunkSize + off);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { file, size, chunkSize, chunkCount, zeroChunks };
}

/** Flips FLIP_BYTES bytes at a random offset in `n` distinct random non-zero chunks; returns the changed chunks' total size. */
function changeChunks(img: Image, n: number): { chunks: number[]; chunkBytes: number; flippedBytes: number } {
  const candidates = Array.from({ length: img.chunkCount }, (_, i) => i).filter((i) => !img.zeroChunks.has(i));
  const chosen: number[] = [];
  while (chosen.length < Math.min(n, candidates.length)) chosen.push(...candidates.splice(randomInt(candidates.length), 1));
  const fd = fs.openSync(img.file, "r+");
  let chunkBytes = 0;
  let flippedBytes = 0;
  try {
    for (const i of chosen) {
      const size = Math.min(img.chunkSize, img.size - i * img.chunkSize);
      const len = Math.min(FLIP_BYTES, size);
      const at = i * img.chunkSize + randomInt(size - len + 1);
      const b = Buffer.alloc(len);
      fs.readSync(fd, b, 0, len, at);
      for (let k = 0; k < len; k++) b[k] = b[k]! ^ 0xff;
      fs.writeSync(fd, b, 0, len, at);
      chunkBytes += size;
      flippedBytes += len;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { chunks: chosen.sort((a, b) => a - b), chunkBytes, flippedBytes };
}

// ---------------------------------------------------------------------------------------------
// S3 housekeeping

/** Deletes every object under `prefix` (and aborts unfinished multipart uploads there); returns how many objects. */
async function deletePrefix(s3: S3Client, bucket: string, prefix: string): Promise<number> {
  if (!prefix.endsWith("/")) throw new Error(`refusing to delete a prefix without a trailing slash: ${prefix}`);
  const pending = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  for (const u of pending.Uploads ?? []) {
    if (u.Key && u.UploadId) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  }
  let deleted = 0;
  for (;;) {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000 }));
    const keys = (listed.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (keys.length === 0) return deleted;
    const res = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    if (res.Errors?.length) throw new Error(`deleting under ${prefix}: ${res.Errors[0]?.Code ?? ""} ${res.Errors[0]?.Message ?? ""}`);
    deleted += keys.length;
  }
}

// ---------------------------------------------------------------------------------------------
// restic

interface ResticRun {
  seconds: number;
  dataAdded: number;
  summary: Record<string, unknown>;
}

class Restic {
  constructor(
    private readonly config: Config,
    private readonly cacheDir: string,
    private readonly signal: AbortSignal,
  ) {}

  repoUrl(prefix: string): string {
    const endpoint = (this.config.s3.endpoint ?? "https://s3.amazonaws.com").replace(/\/$/, "");
    return `s3:${endpoint}/${this.config.s3.buckets.backups}/${prefix}`;
  }

  private exec(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const child = spawn("restic", args, {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: process.env.HOME ?? os.tmpdir(),
          AWS_ACCESS_KEY_ID: this.config.s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: this.config.s3.secretAccessKey,
          AWS_DEFAULT_REGION: this.config.s3.region,
          RESTIC_PASSWORD: "reclo-bench-restic",
          RESTIC_CACHE_DIR: this.cacheDir,
        },
        stdio: ["ignore", "pipe", "pipe"],
        signal: this.signal,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr, seconds: (performance.now() - t0) / 1000 }));
    });
  }

  private base(prefix: string): string[] {
    return ["-r", this.repoUrl(prefix), "-o", `s3.bucket-lookup=${this.config.s3.forcePathStyle ? "path" : "auto"}`, "-o", `s3.region=${this.config.s3.region}`];
  }

  async version(): Promise<string | null> {
    try {
      const r = await this.exec(["version"]);
      return r.code === 0 ? r.stdout.trim() : null;
    } catch {
      return null;
    }
  }

  async init(prefix: string): Promise<void> {
    const r = await this.exec([...this.base(prefix), "init"]);
    if (r.code !== 0) throw new Error(`restic init failed: ${oneLine(r.stderr || r.stdout)}`);
  }

  async backup(prefix: string, file: string): Promise<ResticRun> {
    const r = await this.exec([...this.base(prefix), "backup", "--json", file]);
    if (r.code !== 0) throw new Error(`restic backup failed: ${oneLine(r.stderr || r.stdout)}`);
    const summary = r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      })
      .find((m) => m.message_type === "summary");
    if (!summary) throw new Error(`restic backup printed no summary: ${oneLine(r.stdout.slice(-300))}`);
    return { seconds: r.seconds, dataAdded: Number(summary.data_added), summary };
  }
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim().slice(0, 300);
}

// ---------------------------------------------------------------------------------------------

interface Results {
  machine: { cpus: number; model: string; loadavgStart: number[]; loadavgEnd?: number[]; memGiB: number; node: string };
  image: { size: number; chunkSize: number; chunkCount: number; zeroChunks: number; changedChunksPerRun: number };
  /** completeMs: from the last part's upload to the end (CompleteMultipartUpload). */
  plain: { queueSize: number; runs: (Measured & { completeMs: number })[] }[];
  full: OursRun[];
  incremental: (OursRun & { changedChunkBytes: number; flippedBytes: number; changedChunks: number[] })[];
  restic: { version?: string; repo?: string; unavailable?: string; full: ResticRun[]; incremental: (ResticRun & { changedChunkBytes: number })[] };
}

async function main(signal: AbortSignal, cleanups: (() => Promise<void>)[]): Promise<boolean> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  // Apollo Server stops itself and re-raises SIGINT/SIGTERM (killing the process before the bench's
  // cleanup) unless it reads NODE_ENV=test; the API's own config below is unaffected.
  process.env.NODE_ENV = "test";
  const loadStart = os.loadavg();
  const results: Results = {
    machine: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model ?? "?",
      loadavgStart: loadStart,
      memGiB: Math.round(os.totalmem() / 1024 ** 3),
      node: process.version,
    },
    image: { size: 0, chunkSize: 0, chunkCount: 0, zeroChunks: 0, changedChunksPerRun: 0 },
    plain: [],
    full: [],
    incremental: [],
    restic: { full: [], incremental: [] },
  };
  console.log(`machine: ${results.machine.cpus} CPU (${results.machine.model}), ${results.machine.memGiB} GiB RAM, node ${process.version}`);
  console.log(`load average at start: ${loadStart.map((l) => l.toFixed(2)).join(" ")} (1/5/15 min)`);

  // The in-process API on the bench database.
  const config = loadConfig({
    ...process.env,
    NODE_ENV: "development",
    LOG_LEVEL: "warn",
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: opts["database-url"],
    DATABASE_POOL_SIZE: "8",
    MIGRATE_ON_START: "true",
    VERIFY_AFTER_BACKUP: "false",
    SIGNUP_MAX_PER_ADDRESS: "1000000",
    LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "100000",
  });
  const logger = createLogger(config.logLevel, process.stderr);
  const rt: Runtime = await createRuntime(config, logger);
  cleanups.push(() => rt.close());
  const app: RunningApp = await startApp({ config, logger, services: rt.services, events: rt.events.bus, limiter: rt.limiter, availability: rt.availability, stopGracePeriodMs: 500 });
  cleanups.push(() => app.stop());
  instrument(rt.services.backupLifecycle, "requestChunkUploads", "requestChunkUploads");
  instrument(rt.services.backupLifecycle, "complete", "completeBackup");
  instrument(rt.services.chunks, "headChunks", "headChunks");
  instrument(rt.services.chunks, "presignChunkPut", "presignChunkPut");
  instrument(rt.services.chunks, "putManifest", "putManifest");
  log(`API on ${app.graphqlUrl} (database ${new URL(config.database.url).pathname.slice(1)})`);

  const s3 = createS3Client(config.s3);
  cleanups.push(async () => s3.destroy());
  const bucket = config.s3.buckets.backups;
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const s3Pid = findPid("versitygw");
  if (s3Pid === null) log("versitygw process not found: S3-server CPU will show as n/a");

  // The image.
  const tmp = fs.mkdtempSync(path.join(opts["tmp-dir"], "reclo-bench-backup-"));
  cleanups.push(async () => fs.rmSync(tmp, { recursive: true, force: true }));
  const size = sizeMiB * MiB;
  log(`writing a ${sizeMiB} MiB image to ${tmp} …`);
  const tGen = performance.now();
  const img = generateImage(tmp, size, zeroPercent);
  const nChange = Math.max(1, Math.ceil((changePercent / 100) * img.chunkCount));
  results.image = { size, chunkSize: img.chunkSize, chunkCount: img.chunkCount, zeroChunks: img.zeroChunks.size, changedChunksPerRun: nChange };
  log(`image written in ${secs((performance.now() - tGen) / 1000)} s`);
  console.log(
    `image: ${sizeMiB} MiB random (incompressible), ${img.chunkCount} chunks of ${mib(img.chunkSize)} MiB, ` +
      `${img.zeroChunks.size} all-zero (${((100 * img.zeroChunks.size) / img.chunkCount).toFixed(1)} %); ` +
      `incremental after flipping ${FLIP_BYTES} B in ${nChange} chunk(s) (${changePercent} % of ${img.chunkCount})`,
  );

  // Scratch prefixes to remove at the end (also after a failure).
  const prefixes = new Set<string>();
  cleanups.push(async () => {
    let n = 0;
    for (const p of prefixes) n += await deletePrefix(s3, bucket, p).catch((err: unknown) => (log(`cleanup of ${p} failed: ${(err as Error).message}`), 0));
    log(`cleanup: deleted ${n} object(s) under ${prefixes.size} prefix(es) of ${bucket}`);
  });

  // Plain lib-storage upload of the same file.
  const queueSizes = engineConcurrency === 4 ? [4] : [4, engineConcurrency];
  for (const q of queueSizes) results.plain.push({ queueSize: q, runs: [] });
  const plainPrefix = `bench-scratch-${runId}/`;
  prefixes.add(plainPrefix);
  const plainUpload = async (queueSize: number, rep: number) => {
    const Key = `${plainPrefix}plain-q${queueSize}-${rep}`;
    let lastPartAt = 0;
    const { m } = await measure(s3Pid, async () => {
      const up = new Upload({ client: s3, params: { Bucket: bucket, Key, Body: fs.createReadStream(img.file) }, queueSize });
      up.on("httpUploadProgress", () => (lastPartAt = performance.now()));
      const onAbort = () => void up.abort().catch(() => undefined);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await up.done();
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    });
    const completeMs = performance.now() - lastPartAt;
    await deletePrefix(s3, bucket, plainPrefix);
    results.plain.find((p) => p.queueSize === queueSize)!.runs.push({ ...m, completeMs });
    log(`plain Upload queueSize ${queueSize}: ${secs(m.seconds)} s, ${mbps(size, m.seconds)} MB/s (CompleteMultipartUpload ${Math.round(completeMs)} ms)`);
  };

  // Ours: a fresh user per repetition (a full with nothing stored yet), then the incremental.
  let userCounter = 0;
  const newUser = async () => {
    const name = `bench${runId}u${++userCounter}`;
    const anonymous = new ReCloClient({ url: app.graphqlUrl });
    const input = { username: name, email: `${name}@example.com`, password: "correct horse battery staple" };
    await anonymous.request(SignUpDocument, { input });
    const { logIn } = await anonymous.request(LogInDocument, { input: { email: input.email, password: input.password } });
    prefixes.add(`${logIn.user.id}/`);
    return { id: logIn.user.id, token: logIn.token };
  };
  const oursOnce = async (token: string, kind: "FULL" | "INCREMENTAL"): Promise<OursRun> => {
    const client = new TimedClient({ url: app.graphqlUrl, token });
    const puts: PutStats = { count: 0, bytes: 0, busyMs: 0, anyInFlightMs: 0, maxInFlight: 0, firstStart: 0, lastEnd: 0 };
    serverOps.clear();
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const startedAt = performance.now();
    const { value: result, m } = await measure(s3Pid, () => runBackup({ client, imagePath: img.file, sourceName: "bench-image", kind, concurrency, signal, fetch: timedFetch(puts) })).finally(() =>
      loop.disable(),
    );
    if (result.status !== "COMPLETED") throw new Error(`${kind} backup ended ${result.status}`);
    const loopDelay = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 };
    return { result, m, ops: Object.fromEntries(client.ops), server: Object.fromEntries(serverOps), puts, startedAt, loopDelay };
  };
  const ours = async () => {
    const user = await newUser();
    const full = await oursOnce(user.token, "FULL");
    results.full.push(full);
    log(`reclo full: ${secs(full.m.seconds)} s, ${mbps(size, full.m.seconds)} MB/s, sent ${mib(full.result.sentBytes)} MiB in ${full.result.chunksUploaded} chunks`);
    const change = changeChunks(img, nChange);
    const incr = await oursOnce(user.token, "INCREMENTAL");
    results.incremental.push({ ...incr, changedChunkBytes: change.chunkBytes, flippedBytes: change.flippedBytes, changedChunks: change.chunks });
    log(`reclo incremental: ${secs(incr.m.seconds)} s, sent ${mib(incr.result.sentBytes)} MiB (${incr.result.chunksUploaded} chunks) for ${change.chunks.length} changed chunk(s)`);
  };

  // restic peer.
  const restic = new Restic(config, path.join(tmp, "restic-cache"), signal);
  if (opts.restic === "off") results.restic.unavailable = "disabled (--restic off)";
  else {
    const v = await restic.version();
    if (v) {
      results.restic.version = v;
      results.restic.repo = restic.repoUrl(`restic-bench/${runId}-r<N>`);
    }
    else results.restic.unavailable = "restic not on PATH (Debian: apt-get install -y restic)";
  }
  const resticOnce = async (rep: number) => {
    const prefix = `restic-bench/${runId}-r${rep}`;
    prefixes.add(`${prefix}/`);
    await restic.init(prefix);
    const full = await restic.backup(prefix, img.file);
    results.restic.full.push(full);
    log(`restic full: ${secs(full.seconds)} s, added ${mib(full.dataAdded)} MiB`);
    const change = changeChunks(img, nChange);
    const incr = await restic.backup(prefix, img.file);
    results.restic.incremental.push({ ...incr, changedChunkBytes: change.chunkBytes });
    log(`restic after the change: ${secs(incr.seconds)} s, added ${mib(incr.dataAdded)} MiB`);
    await deletePrefix(s3, bucket, `${prefix}/`);
    fs.rmSync(path.join(tmp, "restic-cache"), { recursive: true, force: true });
  };

  for (let rep = 1; rep <= runs; rep++) {
    log(`--- repetition ${rep}/${runs} (${rep % 2 ? "plain first" : "reclo first"})`);
    const plainAll = async () => {
      for (const q of queueSizes) await plainUpload(q, rep);
    };
    if (rep % 2) {
      await plainAll();
      await ours();
    } else {
      await ours();
      await plainAll();
    }
    if (results.restic.version && !results.restic.unavailable) {
      try {
        await resticOnce(rep);
      } catch (err) {
        if (signal.aborted) throw err;
        results.restic.unavailable = `restic cannot use ${restic.repoUrl("restic-bench")} with this S3 server: ${oneLine((err as Error).message)}`;
        log(results.restic.unavailable);
      }
    }
  }
  results.machine.loadavgEnd = os.loadavg();

  const ok = report(results);
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(results, null, 2));
  return ok;
}

// ---------------------------------------------------------------------------------------------
// The report

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return [line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

function report(r: Results): boolean {
  const size = r.image.size;
  const plain4 = r.plain[0]!;
  const plainMed = median(plain4.runs.map((m) => m.seconds));
  const fullMed = median(r.full.map((f) => f.m.seconds));
  const incrMed = median(r.incremental.map((f) => f.m.seconds));
  const cpu = (ms: Measured[]) => `${secs(median(ms.map((m) => m.nodeCpu)))} / ${Number.isFinite(ms[0]?.s3Cpu) ? secs(median(ms.map((m) => m.s3Cpu))) : "n/a"}`;
  const each = (xs: number[]) => xs.map(secs).join(", ");
  const rows: string[][] = [];
  for (const p of r.plain) {
    const med = median(p.runs.map((m) => m.seconds));
    rows.push([`plain lib-storage Upload, queueSize ${p.queueSize}`, secs(med), each(p.runs.map((m) => m.seconds)), mbps(size, med), (plainMed / med).toFixed(2), mib(size), cpu(p.runs)]);
  }
  rows.push([
    `reclo full (runBackup, concurrency ${engineConcurrency})`,
    secs(fullMed),
    each(r.full.map((f) => f.m.seconds)),
    mbps(size, fullMed),
    (plainMed / fullMed).toFixed(2),
    mib(median(r.full.map((f) => f.result.sentBytes))),
    cpu(r.full.map((f) => f.m)),
  ]);
  rows.push([
    `reclo incremental (${r.image.changedChunksPerRun} changed chunk(s))`,
    secs(incrMed),
    each(r.incremental.map((f) => f.m.seconds)),
    mbps(size, incrMed),
    (plainMed / incrMed).toFixed(2),
    mib(median(r.incremental.map((f) => f.result.sentBytes))),
    cpu(r.incremental.map((f) => f.m)),
  ]);
  if (r.restic.full.length) {
    const rf = median(r.restic.full.map((x) => x.seconds));
    const ri = median(r.restic.incremental.map((x) => x.seconds));
    rows.push(["restic full (peer)", secs(rf), each(r.restic.full.map((x) => x.seconds)), mbps(size, rf), (plainMed / rf).toFixed(2), mib(median(r.restic.full.map((x) => x.dataAdded))), "-"]);
    if (r.restic.incremental.length)
      rows.push([
        "restic after the change (peer)",
        secs(ri),
        each(r.restic.incremental.map((x) => x.seconds)),
        mbps(size, ri),
        (plainMed / ri).toFixed(2),
        mib(median(r.restic.incremental.map((x) => x.dataAdded))),
        "-",
      ]);
  }
  console.log("");
  console.log(
    table(["row", "wall s (median)", "each run s", "image MB/s", "× plain q4", "sent MiB", "CPU s node/S3 server"], rows),
  );
  console.log("(image MB/s = image size / wall time; sent = chunk PUT bytes for reclo, object size for plain, \"Added to the repository\" for restic;");
  console.log(" CPU node = this process: the engine AND the in-process API; S3 server = versitygw)");
  if (r.restic.unavailable) console.log(`restic: ${r.restic.unavailable}`);
  else if (r.restic.version) console.log(`restic: ${r.restic.version}; repository ${r.restic.repo ?? "?"}, default options (compression auto, 5 connections)`);

  // Where the time of a full goes.
  console.log("");
  for (const p of r.plain)
    console.log(
      `plain Upload queueSize ${p.queueSize}, per run: ${p.runs.map((m) => `${secs(m.seconds)} s of which ${Math.round(m.completeMs)} ms after the last part (CompleteMultipartUpload)`).join("; ")}`,
    );
  console.log("reclo full, per run: GraphQL calls (count, total ms) and chunk PUTs");
  for (const [i, f] of r.full.entries()) {
    const ops = Object.entries(f.ops)
      .map(([n, s]) => `${n} ${s.count}× ${Math.round(s.ms)} ms`)
      .join(", ");
    const wallMs = f.m.seconds * 1000;
    const p = f.puts;
    console.log(
      `  run ${i + 1}: ${ops}; ${p.count} PUTs ${mib(p.bytes)} MiB, mean PUT ${(p.busyMs / Math.max(1, p.count)).toFixed(0)} ms (${mbps(p.bytes / Math.max(1, p.count), p.busyMs / Math.max(1, p.count) / 1000)} MB/s each), ` +
        `mean in flight ${(p.busyMs / wallMs).toFixed(2)} (max ${p.maxInFlight}), no PUT in flight ${Math.round(wallMs - p.anyInFlightMs)} ms of ${Math.round(wallMs)} ms ` +
        `(before the first ${Math.round(p.firstStart - f.startedAt)} ms, after the last ${Math.round(f.startedAt + wallMs - p.lastEnd)} ms)`,
    );
    const server = Object.entries(f.server)
      .map(([n, s]) => `${n} ${s.count}× ${Math.round(s.ms)} ms`)
      .join(", ");
    console.log(`         API side: ${server}; event-loop delay p50 ${f.loopDelay.p50.toFixed(1)} ms, p99 ${f.loopDelay.p99.toFixed(1)} ms, max ${f.loopDelay.max.toFixed(1)} ms`);
  }

  // Goals.
  const pairRatios = r.full.map((f, i) => (r.plain[0]!.runs[i]?.seconds ?? NaN) / f.m.seconds).filter(Number.isFinite);
  // Conservative: the lower of the median per-repetition ratio and the ratio of the medians.
  const fullRatio = Math.min(median(pairRatios), plainMed / fullMed);
  const incrRatios = r.incremental.map((x) => x.result.sentBytes / x.changedChunkBytes);
  const incrRatio = median(incrRatios);
  const fullOk = fullRatio >= GOAL_FULL_RATIO;
  const incrOk = incrRatio >= GOAL_INCR_RATIO[0] && incrRatio <= GOAL_INCR_RATIO[1];
  const changed = median(r.incremental.map((x) => x.changedChunkBytes));
  console.log("");
  console.log(
    `${fullOk ? "PASS" : "MISS"}  full throughput ${fullRatio.toFixed(2)}× the plain upload (the lower of: ratio of the medians ${(plainMed / fullMed).toFixed(2)}, ` +
      `median of the per-repetition ratios ${median(pairRatios).toFixed(2)} [${pairRatios.map((x) => x.toFixed(2)).join(", ")}]; goal ≥ ${GOAL_FULL_RATIO}×)`,
  );
  console.log(
    `${incrOk ? "PASS" : "MISS"}  incremental sent ${mib(median(r.incremental.map((x) => x.result.sentBytes)))} MiB for ${mib(changed)} MiB of changed chunks ` +
      `(${r.image.changedChunksPerRun} × ${mib(r.image.chunkSize)} MiB; ${FLIP_BYTES} B flipped in each): ratio ${incrRatio.toFixed(2)} (goal ${GOAL_INCR_RATIO[0]}–${GOAL_INCR_RATIO[1]}); ` +
      `wall ${secs(incrMed)} s = ${(incrMed / fullMed).toFixed(2)}× the full`,
  );
  console.log(`load average at start ${r.machine.loadavgStart.map((l) => l.toFixed(2)).join(" ")}, at end ${(r.machine.loadavgEnd ?? []).map((l) => l.toFixed(2)).join(" ")}`);
  return fullOk && incrOk;
}

// ---------------------------------------------------------------------------------------------

async function runCleanups(cleanups: (() => Promise<void>)[]): Promise<void> {
  // Reverse order: S3 objects and the image before the API and the S3 client they use.
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (err) {
      log(`cleanup step failed: ${(err as Error).message}`);
    }
  }
}

const ac = new AbortController();
const cleanups: (() => Promise<void>)[] = [];
let exitCode = 0;
const overall = setTimeout(() => {
  log(`stopped after the overall timeout of ${timeoutS} s; cleaning up`);
  exitCode = 3;
  ac.abort(new Error("overall timeout"));
  setTimeout(() => process.exit(3), 120_000).unref();
}, timeoutS * 1000);
overall.unref();
// process.on, not once: a dependency's signal-exit handler re-raises the signal (killing us before
// the cleanup) when it sees no other listener left. A second signal exits at once.
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (ac.signal.aborted) {
      log(`${sig} again: exiting without finishing the cleanup`);
      process.exit(130);
    }
    log(`${sig}: cleaning up`);
    exitCode = 130;
    ac.abort(new Error(sig));
    setTimeout(() => process.exit(130), 60_000).unref();
  });
}

main(ac.signal, cleanups)
  .then((ok) => {
    if (!ok && exitCode === 0) exitCode = 1;
  })
  .catch((err: unknown) => {
    if (exitCode === 0) exitCode = 2;
    if (ac.signal.aborted) log(`stopped (${String((ac.signal.reason as Error | undefined)?.message ?? "aborted")}): ${err instanceof Error ? err.message : String(err)}`);
    else log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  })
  .finally(async () => {
    clearTimeout(overall);
    await runCleanups(cleanups);
    process.exit(exitCode);
  });
