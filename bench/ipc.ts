import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import v8 from "node:v8";
import readline from "node:readline";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import { Topic } from "../src/events/topics";

/**
 * A tiny request/response protocol over Node's IPC channel ("advanced" serialization, so typed
 * arrays cross cheaply), used between the bench orchestrator and its child processes.
 */
interface Request {
  id: number;
  cmd: string;
  args?: unknown;
}
type Response = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
interface Hello {
  hello: true;
  info: unknown;
}

export const repoRoot = path.resolve(__dirname, "..");

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Child side: exit as soon as the parent process (the IPC channel) goes away. */
export function exitWithParent(): void {
  process.once("disconnect", () => process.exit(0));
}

/** Child side, for a `stop` command: answers first, then shuts down with `close` (a hard exit if closing hangs 5 s). */
export function exitAfter(close: () => Promise<void>): void {
  setTimeout(() => process.exit(0), 5000).unref();
  setImmediate(() => {
    void close().finally(() => process.exit(0));
  });
}

/** Child side: answers the parent's commands; exits when the parent goes away. */
export function serve(handlers: Record<string, (args: never) => unknown>, info: () => unknown): void {
  if (!process.send || !process.connected) process.exit(0); // started without a parent, or the parent is gone
  exitWithParent();
  process.on("message", (msg: Request) => {
    const handler = handlers[msg.cmd];
    void (async () => {
      try {
        if (!handler) throw new Error(`unknown command ${msg.cmd}`);
        const result = await handler(msg.args as never);
        process.send!({ id: msg.id, ok: true, result } satisfies Response);
      } catch (err) {
        process.send!({ id: msg.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Response);
      }
    })();
  });
  process.send({ hello: true, info: info() } satisfies Hello);
}

/**
 * The node flags scripts/lib.sh run_product starts the product with (its RECLO_NODE_FLAGS default);
 * the benches' and the tests' product processes (test/helpers/processes.ts) run with them too.
 */
export const PRODUCT_NODE_ARGS = ["--max-semi-space-size=32"];

/** The secrets-at-rest key of this bench run's product processes when none is configured (see Child.start). */
const BENCH_SECRETS_KEY = randomBytes(32).toString("base64");

/** Parent side: one child process running a bench/*.ts script through @swc-node/register. */
export class Child {
  /** Every child ever started, so the orchestrator can kill them all on the way out. */
  static readonly all = new Set<Child>();
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly tail: string[] = [];
  private exitCode: number | null | undefined;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    const forward = (stream: NodeJS.ReadableStream | null) => {
      if (!stream) return;
      readline.createInterface({ input: stream }).on("line", (line) => {
        this.tail.push(line);
        if (this.tail.length > 40) this.tail.shift();
        process.stderr.write(`[${name}] ${line}\n`);
      });
    };
    forward(proc.stdout);
    forward(proc.stderr);
    proc.on("message", (msg: Response | Hello) => {
      if ("hello" in msg) return;
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      clearTimeout(w.timer);
      if (msg.ok) w.resolve(msg.result);
      else w.reject(new Error(`${name}: ${msg.error}`));
    });
    proc.on("exit", (code, signal) => {
      this.exitCode = code;
      for (const [id, w] of this.waiting) {
        clearTimeout(w.timer);
        w.reject(new Error(`${name} exited (code ${code}, signal ${signal}) while answering; last output:\n${this.tail.join("\n")}`));
        this.waiting.delete(id);
      }
    });
  }

  /**
   * Starts `bench/<script>` with --expose-gc and waits for its hello. `product: true` for a process
   * that runs the product's code (API, publisher/worker): it gets the node flags the product is
   * started with (PRODUCT_NODE_ARGS), so the bench measures what is deployed.
   */
  static async start<Info>(
    name: string,
    script: string,
    opts: { env: NodeJS.ProcessEnv; args?: string[]; nodeArgs?: string[]; product?: boolean; startTimeoutMs?: number; /** An open file descriptor for the child's stdout instead of forwarding it (e.g. a log file). */ stdoutFd?: number },
  ): Promise<{ child: Child; info: Info }> {
    // A product process needs the key that encrypts secrets at rest; on a machine where `npm start`
    // never ran there is no .data/secrets.key, and the API refused to start. The bench's data is
    // its own and deleted at the end: one random key per bench run, shared by its processes.
    const env = opts.product && !opts.env.SECRETS_KEY && !opts.env.SECRETS_KEY_FILE ? { ...opts.env, SECRETS_KEY: BENCH_SECRETS_KEY } : opts.env;
    const proc = fork(path.join(__dirname, script), opts.args ?? [], {
      cwd: repoRoot,
      env,
      execArgv: ["--expose-gc", ...(opts.product ? PRODUCT_NODE_ARGS : []), ...(opts.nodeArgs ?? []), "-r", "@swc-node/register"],
      stdio: ["ignore", opts.stdoutFd ?? "pipe", "pipe", "ipc"],
      serialization: "advanced",
    });
    const child = new Child(name, proc);
    Child.all.add(child);
    const info = await new Promise<Info>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within ${opts.startTimeoutMs ?? 90_000} ms:\n${child.tail.join("\n")}`)), opts.startTimeoutMs ?? 90_000);
      proc.on("message", (msg: Response | Hello) => {
        if ("hello" in msg) {
          clearTimeout(timer);
          resolve(msg.info as Info);
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited with code ${code} before it was ready:\n${child.tail.join("\n")}`));
      });
    });
    return { child, info };
  }

  call<T>(cmd: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
    if (this.exitCode !== undefined) return Promise.reject(new Error(`${this.name} has exited (code ${this.exitCode})`));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: "${cmd}" got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.proc.send({ id, cmd, args } satisfies Request);
    });
  }

  /** Asks the child to stop, then kills it (by its pid) if it has not exited in time. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exitCode !== undefined) return;
    const exited = new Promise<void>((resolve) => this.proc.once("exit", () => resolve()));
    await Promise.race([this.call("stop", undefined, graceMs).catch(() => {}), sleep(graceMs)]);
    await Promise.race([exited, sleep(2000)]);
    this.kill();
  }

  kill(): void {
    if (this.exitCode === undefined && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}

/** CPU share and event-loop delay of this process over a measurement window. */
export class LoadWindow {
  // The histogram records whole sampling intervals: subtract the 1 ms resolution to get the delay.
  private readonly eld = monitorEventLoopDelay({ resolution: 1 });
  private cpu = process.cpuUsage();
  private t0 = performance.now();

  constructor() {
    this.eld.enable();
  }

  start(): void {
    this.eld.reset();
    this.cpu = process.cpuUsage();
    this.t0 = performance.now();
  }

  end(): LoadReport {
    const cpu = process.cpuUsage(this.cpu);
    const wallMs = performance.now() - this.t0;
    return {
      wallMs,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
      eventLoopDelayP50Ms: Math.max(0, this.eld.percentile(50) / 1e6 - 1),
      eventLoopDelayP99Ms: Math.max(0, this.eld.percentile(99) / 1e6 - 1),
      eventLoopDelayMaxMs: Math.max(0, this.eld.max / 1e6 - 1),
    };
  }
}

export interface LoadReport {
  wallMs: number;
  /** 100 = one core busy the whole window. */
  cpuPercent: number;
  eventLoopDelayP50Ms: number;
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
}

export interface MemoryReport {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** /proc/self/smaps_rollup and status fields in bytes (Linux), and V8 space sizes, for diagnosis. */
  detail?: Record<string, number>;
}

function procDetail(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const file of ["/proc/self/smaps_rollup", "/proc/self/status"]) {
      for (const line of fs.readFileSync(file, "utf8").split("\n")) {
        const m = /^(\w+):\s+(\d+) kB/.exec(line);
        if (m && /^(Rss|Anonymous|LazyFree|Private_Dirty|Shared_Clean|Private_Clean|RssAnon|RssFile|VmHWM|AnonHugePages)$/.test(m[1]!)) out[m[1]!] = Number(m[2]) * 1024;
      }
    }
  } catch {
    // not Linux: only V8 numbers
  }
  for (const s of v8.getHeapSpaceStatistics()) {
    out[`v8.${s.space_name}.size`] = s.space_size;
    out[`v8.${s.space_name}.used`] = s.space_used_size;
  }
  const h = v8.getHeapStatistics();
  out["v8.total_physical_size"] = h.total_physical_size;
  out["v8.malloced_memory"] = h.malloced_memory;
  return out;
}

/** process.memoryUsage() after full garbage collections (needs --expose-gc); reduce: after a memory-reducing one. */
export async function memoryAfterGc(reduce = false): Promise<MemoryReport> {
  const gc = (globalThis as { gc?: (options?: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void }).gc;
  if (!gc) throw new Error("start this process with --expose-gc");
  // reduce: a memory-reducing GC (what V8's memory reducer or a memory-pressure notification does):
  // it compacts the old generation and returns V8's page pool to the OS. Without it, pages freed
  // by GCs stay committed in that pool (counted in RSS) until such a GC happens.
  const reduceStart = performance.now();
  if (reduce) gc({ type: "major", execution: "sync", flavor: "last-resort" });
  const reduceMs = performance.now() - reduceStart;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await sleep(50);
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, detail: { ...procDetail(), ...(reduce ? { reduceGcMs: reduceMs } : {}) } };
}

/** p50, p99 and max of a list of milliseconds. */
export function p50p99max(v: number[]): number[] {
  const s = [...v].sort((a, b) => a - b);
  return [50, 99].map((p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN).concat(s.at(-1) ?? NaN);
}

/**
 * Sees each progress event on Redis as the API does (a connection of its own, in the bench's own
 * process) and records how long after its write it arrived (the message carries the write time).
 */
export async function watchRedis(redisUrl: string): Promise<{ seen: number[]; close(): void }> {
  const watcher = new Redis(redisUrl, { enableReadyCheck: false });
  const seen: number[] = [];
  watcher.on("pmessage", (_pattern: string, _channel: string, text: string) => {
    const m = /"message":"bench r=\d+ t=(\d+(?:\.\d+)?)"/.exec(text);
    if (m) seen.push(epochMs() - Number(m[1]));
  });
  await watcher.psubscribe(`${Topic.RECOVERY_CHANGED}:*`);
  return { seen, close: () => watcher.disconnect() };
}
