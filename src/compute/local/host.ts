import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { TargetError } from "../target";

/**
 * What the local target needs from the host it runs on, with no knowledge of QEMU's arguments:
 * running a command to completion, looking processes up in /proc, signals, the -runas user, /dev/kvm,
 * and the few careful file operations (private directories, reads that never follow a link).
 */

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface LocalTargetLogger {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  debug: LogFn;
}

export const noop = () => {};
export const silentLogger: LocalTargetLogger = { info: noop, warn: noop, error: noop, debug: noop };

export const INSTALL_HINT = "QEMU is not installed: apt-get install qemu-system-x86 qemu-utils (or run `npm run services -- up --with-qemu`)";
const CONSOLE_TAIL_BYTES = 64 * 1024;

/** One caller at a time per key; the others queue behind it in order. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(noop);
    this.tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

// ------------------------------------------------------------------ commands

export class CommandError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * Runs a command to completion; rejects with the stderr tail. `daemon`: the command forks a
 * daemon that may keep our pipes open briefly, so completion is the exit of the direct child.
 */
export function run(bin: string, args: string[], opts: { timeoutMs: number; cwd?: string; daemon?: boolean }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout = (stdout + d.toString()).slice(-16_384)));
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-16_384)));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish(new CommandError(`${path.basename(bin)} timed out after ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(stdout);
    };
    child.on("error", (err: NodeJS.ErrnoException) => finish(new CommandError(`${bin}: ${err.message}`, err.code)));
    const done = (code: number | null, sig: NodeJS.Signals | null) => {
      if (code === 0) finish();
      else finish(new CommandError(stderr.trim().slice(-2000) || `${path.basename(bin)} exited with ${code ?? sig}`));
    };
    if (opts.daemon) {
      // Give stderr a moment to drain after the exit, but do not wait for the daemon's copies of the pipes.
      child.on("exit", (code, sig) => setTimeout(() => done(code, sig), 50));
    } else {
      child.on("close", done);
    }
  });
}

// ------------------------------------------------------------------ processes

/** Alive, not a zombie, and its command line names the instance directory (guards against pid reuse). */
export async function isInstanceProcess(pid: number, dir: string): Promise<boolean> {
  try {
    const [cmdline, stat] = await Promise.all([fsp.readFile(`/proc/${pid}/cmdline`), fsp.readFile(`/proc/${pid}/stat`, "utf8")]);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    return cmdline.includes(Buffer.from(dir + path.sep)) || cmdline.includes(Buffer.from(dir + "\0"));
  } catch {
    return false;
  }
}

/**
 * A live process's start time (/proc/<pid>/stat field 22, clock ticks since boot): what tells it
 * from a later process given the same pid. Undefined once it is gone or a zombie (a zombie has
 * closed all its files).
 */
export async function liveStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // from field 3 (state) on
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** QEMU processes (argv[0] names qemu or the configured binary) whose command line names `dir`. */
export async function qemuProcessesNaming(dir: string, binName: string): Promise<number[]> {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = await fsp.readdir("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid || !(await isInstanceProcess(pid, dir))) continue;
    const argv0 = path.basename((await fsp.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0")[0] ?? "");
    if (argv0.includes("qemu") || argv0 === binName) out.push(pid);
  }
  return out;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** /dev/kvm opens read-write (what QEMU needs). */
export function kvmUsable(): boolean {
  try {
    fs.closeSync(fs.openSync("/dev/kvm", fs.constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

export interface RunAsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Looks the -runas user up (getent, so NSS users count); refuses root and a missing user. */
export async function resolveRunAs(name: string | undefined): Promise<RunAsUser | undefined> {
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!name) {
    if (root) throw new TargetError("the worker runs as root, so QEMU must drop to an unprivileged user: set QEMU_RUNAS", false, "QEMU_RUNAS_REQUIRED");
    return undefined;
  }
  if (!root) throw new TargetError(`QEMU_RUNAS=${name} needs the worker to run as root (QEMU cannot switch users otherwise); unset it to run QEMU as this user`, false, "QEMU_RUNAS_UNAVAILABLE");
  const entry = await new Promise<string>((resolve) => {
    execFile("getent", ["passwd", name], { timeout: 10_000 }, (err, stdout) => resolve(err ? "" : stdout.trim()));
  });
  const [, , uid, gid] = entry.split(":");
  if (!entry || uid === undefined || gid === undefined) {
    throw new TargetError(
      `user ${name} (QEMU_RUNAS) does not exist: run \`npm run services -- up --with-qemu\` or useradd --system --no-create-home --shell /usr/sbin/nologin ${name}`,
      false,
      "QEMU_RUNAS_UNAVAILABLE",
    );
  }
  if (Number(uid) === 0) throw new TargetError(`QEMU_RUNAS=${name} is root; QEMU must run as an unprivileged user`, false, "QEMU_RUNAS_UNAVAILABLE");
  return { name, uid: Number(uid), gid: Number(gid) };
}

// ------------------------------------------------------------------ files

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Creates `dir` (and its parents) and makes it 0700: nothing of the local target is readable by others. */
export async function privateDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.chmod(dir, 0o700);
}

export function ignoreExists(err: unknown): void {
  if ((err as { code?: string }).code !== "EEXIST") throw err;
}

/** A real directory (no link) owned by `uid`, else a TargetError: someone else prepared this path. */
export async function expectOwnDir(dir: string, uid: number): Promise<void> {
  const st = await fsp.lstat(dir);
  if (!st.isDirectory() || st.isSymbolicLink() || st.uid !== uid) throw new TargetError(`${dir} is not a directory owned by us`, false, "SCREEN_DIR_UNSAFE");
}

/** Reads a regular file without following a symbolic link, at most `max` bytes. */
export async function readNoFollow(file: string, max: number): Promise<Buffer> {
  const fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > max) throw new TargetError(`${file} is not a screenshot`, true);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** The last CONSOLE_TAIL_BYTES of a log file as UTF-8 ("" when missing). */
export async function tail(file: string): Promise<string> {
  let fh;
  try {
    fh = await fsp.open(file, "r");
  } catch {
    return "";
  }
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, CONSOLE_TAIL_BYTES);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    let start = 0;
    // Do not start in the middle of a UTF-8 sequence.
    while (start < buf.length && start < 4 && (buf[start]! & 0xc0) === 0x80) start++;
    return buf.subarray(start).toString("utf8");
  } finally {
    await fh.close();
  }
}

/** Bytes an unprivileged process may still write on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  await fsp.mkdir(dir, { recursive: true });
  const st = await fsp.statfs(dir);
  return Number(st.bavail) * Number(st.bsize);
}

// ------------------------------------------------------------------ small things

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function mib(n: number): string {
  return (n / 1048576).toFixed(1);
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isEnoent(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === "ENOENT";
}
