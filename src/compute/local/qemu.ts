import { spawn } from "node:child_process";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { Config } from "../../config";
import { TargetError } from "../target";
import { qmpExecute } from "../qmp";
import { qemuNetworkArgs } from "../guest-network";
import type { LocalInstanceMeta, LocalLayout } from "./layout";
import {
  INSTALL_HINT,
  KeyedLock,
  errMessage,
  exists,
  isEnoent,
  isInstanceProcess,
  liveStartTime,
  kvmUsable,
  noop,
  qemuProcessesNaming,
  resolveRunAs,
  run,
  signal,
  sleep,
  type LocalTargetLogger,
  type RunAsUser,
} from "./host";

/**
 * The QEMU processes of the local target: starting one VM (its arguments, the seccomp sandbox, the
 * -runas user, the pid file, loopback forwards of its ports), talking QMP to it, waiting for it to
 * exit and making it exit; and qemu-img (overlays, raw → qcow2).
 *
 * Confinement: the network policy of guest-network.ts (restricted user networking, loopback-only
 * forwards of the declared ports), `-sandbox on` (no start without it), and, when the worker is
 * root, `-runas <QEMU_RUNAS>`: QEMU opens the disk, the serial log, the pid file and the QMP socket
 * as root, then drops to that user. The QMP socket is 0600.
 *
 * QEMU runs with -daemonize, so VMs outlive the API/worker process; a pid is only believed when
 * /proc/<pid>/cmdline names the instance directory, so a reused pid is never mistaken for the VM.
 */

/** `-sandbox on` is required: QEMU never starts without its seccomp filter. spawn=deny and
 * elevateprivileges=deny would break -daemonize (fork, setsid) and -runas (setuid). */
const SANDBOX = "on,obsolete=deny,resourcecontrol=deny";

/**
 * How long a machine started with KVM under QEMU_ACCEL=auto is watched before it counts as
 * running. /dev/kvm can open on a host whose KVM cannot run the guest (nested or paravirtualised
 * KVM): QEMU then starts, the firmware runs, and at the guest's first instruction KVM cannot
 * emulate the machine stops in `internal-error` (measured: 1.4 s after start, at the boot loader's
 * switch to protected mode), with nothing on its console, for good. Watched, it is started again
 * with TCG instead of being left stopped until the boot check's limit.
 */
export const KVM_WATCH_MS = 3000;

/** How long a start waits for the disk of a machine whose previous QEMU is still exiting. */
export const DISK_LOCK_WAIT_MS = 10_000;

/** KVM opened but could not run a machine on this host: later machines get TCG at once. */
let kvmFailedHere = false;

/**
 * Polls a machine's run state (`statusOf`, QMP query-status) every `everyMs` for `windowMs`:
 * the state it stopped in when KVM failed it (`internal-error`), else undefined. A state that
 * cannot be read yet (QMP not answering) is asked again.
 */
export async function kvmFailure(statusOf: () => Promise<string>, windowMs: number, everyMs = 100): Promise<string | undefined> {
  const deadline = Date.now() + windowMs;
  for (;;) {
    const status = await statusOf().catch(() => undefined);
    if (status === "internal-error") return status;
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, Math.min(everyMs, Math.max(0, deadline - Date.now()))));
  }
}

export class Qemu {
  /** One QMP client at a time per VM (QEMU serves one connection at a time). */
  private readonly qmpLock = new KeyedLock();
  private runAsLookup?: Promise<RunAsUser | undefined>;

  constructor(
    private readonly cfg: Config["local"],
    private readonly layout: LocalLayout,
    private readonly log: LocalTargetLogger,
  ) {}

  /** Both binaries answer --version; else TargetError(QEMU_NOT_INSTALLED) naming what to install. */
  async checkInstalled(): Promise<void> {
    for (const bin of [this.cfg.qemuSystem, this.cfg.qemuImg]) {
      try {
        await run(bin, ["--version"], { timeoutMs: 15_000 });
      } catch (err) {
        this.log.warn({ bin, err: errMessage(err) }, "QEMU binary not runnable");
        throw new TargetError(`${INSTALL_HINT} (${bin}: ${errMessage(err)})`, false, "QEMU_NOT_INSTALLED");
      }
    }
  }

  /**
   * The user QEMU runs as: QEMU_RUNAS (default reclo-qemu) when this process is root, which is then
   * required; nobody when it is not (QEMU cannot switch users then, and already runs unprivileged).
   */
  runAs(): Promise<RunAsUser | undefined> {
    this.runAsLookup ??= resolveRunAs(this.cfg.runAs).catch((err: unknown) => {
      this.runAsLookup = undefined; // a user created later is found on the next call
      throw err;
    });
    return this.runAsLookup;
  }

  /** The accelerator a new VM would get here. */
  resolveAccel(): "kvm" | "tcg" {
    if (this.cfg.accel === "auto") return !kvmFailedHere && kvmUsable() ? "kvm" : "tcg";
    return this.cfg.accel;
  }

  // ---------------------------------------------------------------- qemu-img

  /** `qemu-img create` of a qcow2 overlay on `backing` (relative to `dir`). */
  async createOverlay(dir: string, backing: string, file: string): Promise<void> {
    try {
      await run(this.cfg.qemuImg, ["create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", file], { timeoutMs: 60_000, cwd: dir });
    } catch (err) {
      throw this.binaryError(this.cfg.qemuImg, err, "creating the overlay");
    }
  }

  /** `qemu-img convert -p -O qcow2`, reporting the "(NN.NN/100%)" progress it prints. */
  convert(src: string, dst: string, signal: AbortSignal, onProgress: (percent: number) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.cfg.qemuImg, ["convert", "-p", "-f", "raw", "-O", "qcow2", src, dst], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      let buf = "";
      const onAbort = () => child.kill("SIGKILL");
      signal.addEventListener("abort", onAbort, { once: true });
      child.stdout.on("data", (d: Buffer) => {
        buf = (buf + d.toString()).slice(-256);
        const all = [...buf.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
        const lastMatch = all[all.length - 1];
        if (lastMatch) onProgress(Number(lastMatch[1]));
      });
      child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      child.on("error", (err: NodeJS.ErrnoException) => {
        signal.removeEventListener("abort", onAbort);
        reject(err.code === "ENOENT" ? new TargetError(INSTALL_HINT, false, "QEMU_NOT_INSTALLED") : new TargetError(`qemu-img convert: ${err.message}`, false, "IMPORT_FAILED"));
      });
      child.on("close", (code, sig) => {
        signal.removeEventListener("abort", onAbort);
        if (code === 0) resolve();
        else if (signal.aborted) reject(new TargetError("import was cancelled", false, "IMPORT_CANCELLED"));
        else reject(new TargetError(`qemu-img convert failed (${code ?? sig}): ${stderr.trim().slice(-1500)}`, false, "IMPORT_FAILED"));
      });
    });
  }

  // ---------------------------------------------------------------- qemu-system

  /**
   * Starts the VM of `meta` on its overlay (daemonized) and records its pid, accelerator and host
   * ports in meta.json. Retries with new ports when a forward cannot be bound, and with TCG when
   * KVM fails under QEMU_ACCEL=auto (QEMU refusing it, or the machine stopping with an internal
   * error while watched: see KVM_WATCH_MS); never without the sandbox or the -runas user.
   */
  async start(meta: LocalInstanceMeta): Promise<void> {
    const dir = this.layout.instanceDir(meta.instanceId);
    const overlay = path.join(dir, "overlay.qcow2");
    if (!(await exists(overlay))) throw new TargetError(`the disk of ${meta.instanceId} is missing (${overlay})`, false, "DISK_MISSING");
    const runAs = await this.runAs();
    let accel = this.resolveAccel();
    let lastError = "";
    let diskLockWaitUntil: number | undefined;
    for (let attempt = 1; attempt <= 4; attempt++) {
      // Every declared port gets a free loopback port (the previous one when it is still free).
      const taken = new Set<number>();
      for (const f of meta.forwards) {
        f.hostPort = await reusePort(f.hostPort, taken);
        taken.add(f.hostPort);
      }
      syncLegacyPorts(meta);
      meta.accel = accel;
      const pidFile = path.join(dir, "qemu.pid");
      await fsp.rm(pidFile, { force: true });
      await fsp.rm(this.layout.qmpSocket(dir), { force: true });
      const args = this.args(meta, dir, runAs);
      const started = Date.now();
      try {
        await run(this.cfg.qemuSystem, args, { timeoutMs: 60_000, cwd: dir, daemon: true });
      } catch (err) {
        lastError = errMessage(err);
        if (isEnoent(err)) throw new TargetError(INSTALL_HINT, false, "QEMU_NOT_INSTALLED");
        await this.killAll(dir);
        if (/Failed to get "write" lock/i.test(lastError)) {
          // The disk is still locked by a QEMU that is exiting (killed or crashed): its command line
          // leaves /proc before its files are closed, so it no longer counts as this instance's
          // process. Wait for the lock, a bounded time, without spending an attempt.
          diskLockWaitUntil ??= Date.now() + DISK_LOCK_WAIT_MS;
          if (Date.now() < diskLockWaitUntil) {
            attempt--;
            await new Promise((r) => setTimeout(r, 200));
            continue;
          }
        }
        if (/host forwarding rule|Could not set up host forwarding/i.test(lastError)) {
          for (const f of meta.forwards) f.hostPort = 0;
          continue;
        }
        if (accel === "kvm" && this.cfg.accel === "auto" && /kvm/i.test(lastError)) {
          this.log.warn({ instanceId: meta.instanceId, err: lastError }, "KVM failed; falling back to TCG");
          accel = "tcg";
          continue;
        }
        if (/seccomp|sandbox/i.test(lastError)) {
          // Never retried without it: a guest only runs inside QEMU's seccomp filter.
          throw new TargetError(`QEMU cannot start ${meta.instanceId} with -sandbox on (seccomp), and it never runs without it: ${lastError}`, false, "QEMU_SANDBOX_UNAVAILABLE");
        }
        if (/runas|setgid|setuid|setgroups|initgroups|User ".*" doesn't exist/i.test(lastError)) {
          throw new TargetError(`QEMU cannot switch to user ${runAs?.name ?? "?"} for ${meta.instanceId}: ${lastError}`, false, "QEMU_RUNAS_UNAVAILABLE");
        }
        throw new TargetError(`QEMU failed to start ${meta.instanceId}: ${lastError}`, false, "QEMU_START_FAILED");
      }
      const pid = Number((await fsp.readFile(pidFile, "utf8").catch(() => "")).trim());
      if (!pid || !(await isInstanceProcess(pid, dir))) {
        lastError = "QEMU exited right after start";
        throw new TargetError(`QEMU failed to start ${meta.instanceId}: ${lastError} (see ${path.join(dir, "serial.log")})`, false, "QEMU_START_FAILED");
      }
      await this.privateQmpSocket(meta.instanceId, dir);
      if (accel === "kvm" && this.cfg.accel === "auto") {
        const stopped = await kvmFailure(() => this.qmp<{ status: string }>(dir, "query-status", undefined, 2000).then((s) => s.status), KVM_WATCH_MS);
        if (stopped) {
          lastError = `KVM stopped the machine (${stopped})`;
          this.log.warn({ instanceId: meta.instanceId, status: stopped }, "KVM cannot run machines on this host; falling back to TCG");
          kvmFailedHere = true;
          await this.killAll(dir);
          accel = "tcg";
          continue;
        }
      }
      meta.pid = pid;
      // When QEMU was started: the guest runs from then, however long the bookkeeping after took
      // (on a loaded host, seconds; a boot time counted from its end came out too short).
      meta.startedAt = new Date(started).toISOString();
      await this.layout.writeMeta(meta);
      await fsp.rm(path.join(dir, "stopped"), { force: true });
      await fsp.rm(path.join(dir, "stopping"), { force: true });
      this.log.info({ instanceId: meta.instanceId, pid, accel, forwards: meta.forwards, runAs: runAs?.name, isolated: meta.isolated, ms: Date.now() - started }, "local instance started");
      return;
    }
    throw new TargetError(`QEMU failed to start ${meta.instanceId}: ${lastError}`, true, "QEMU_START_FAILED");
  }

  private args(meta: LocalInstanceMeta, dir: string, runAs: RunAsUser | undefined): string[] {
    const args = [
      "-name",
      `guest=${qemuOpt(meta.name || meta.instanceId)},process=reclo-${meta.instanceId.slice(3, 12)}`,
      "-machine",
      `q35,accel=${meta.accel}`,
      "-cpu",
      meta.accel === "kvm" ? "host" : "max",
      "-m",
      String(this.cfg.memoryMb),
      "-smp",
      String(this.cfg.cpus),
      "-display",
      "none",
      // q35 + if=ide is an AHCI (SATA) disk: what Windows and Linux boot from without virtio drivers.
      "-drive",
      `file=${qemuOpt(path.join(dir, "overlay.qcow2"))},format=qcow2,if=ide,cache=writeback`,
      "-serial",
      `file:${path.join(dir, "serial.log")}`,
      // The firmware's (SeaBIOS) own log: boot evidence ("Booting from Hard Disk", "No bootable device").
      "-chardev",
      `file,id=fw,path=${qemuOpt(path.join(dir, "firmware.log"))}`,
      "-device",
      "isa-debugcon,iobase=0x402,chardev=fw",
      "-qmp",
      `unix:${qemuOpt(this.layout.qmpSocket(dir))},server=on,wait=off`,
      "-pidfile",
      path.join(dir, "qemu.pid"),
      "-daemonize",
      "-sandbox",
      SANDBOX,
      ...(runAs ? ["-runas", runAs.name] : []),
      ...qemuNetworkArgs(meta.forwards),
    ];
    return args;
  }

  /** QEMU created the QMP socket as this process before dropping privileges: make sure only we can connect. */
  private async privateQmpSocket(instanceId: string, dir: string): Promise<void> {
    const sock = this.layout.qmpSocket(dir);
    const st = await fsp.lstat(sock).catch(() => undefined);
    const me = typeof process.getuid === "function" ? process.getuid() : undefined;
    if (!st?.isSocket() || (me !== undefined && st.uid !== me)) {
      await this.killAll(dir);
      throw new TargetError(`the QMP socket of ${instanceId} (${sock}) is missing or not ours`, false, "QMP_SOCKET_UNSAFE");
    }
    await fsp.chmod(sock, 0o600);
  }

  /** The pid of this instance's QEMU when it is alive (pidfile, else meta), checked against /proc. */
  async alivePid(dir: string, meta: LocalInstanceMeta): Promise<number | undefined> {
    const fromFile = Number((await fsp.readFile(path.join(dir, "qemu.pid"), "utf8").catch(() => "")).trim());
    for (const pid of [fromFile, meta.pid]) {
      if (pid && (await isInstanceProcess(pid, dir))) return pid;
    }
    return undefined;
  }

  /**
   * Waits for the instance's QEMU to end: gone or a zombie, its files (the disk's lock among them)
   * closed. Not merely for its command line to go, which an exiting process loses with its memory,
   * before it closes its files: a machine "stopped" then still held its disk, and starting it again
   * (or removing its files) failed. True at once when `pid` is not the instance's process.
   */
  async waitExit(dir: string, pid: number, timeoutMs: number): Promise<boolean> {
    return waitEnd(pid, await this.instanceStart(dir, pid), timeoutMs);
  }

  /** QMP quit, then SIGTERM, then SIGKILL. */
  async forceExit(dir: string, pid: number, graceMs = 5000): Promise<void> {
    const start = await this.instanceStart(dir, pid);
    if (start === undefined) return;
    await this.qmp(dir, "quit", undefined, 3000).catch(noop);
    if (await waitEnd(pid, start, graceMs)) return;
    signal(pid, "SIGTERM");
    if (await waitEnd(pid, start, 2000)) return;
    signal(pid, "SIGKILL");
    if (!(await waitEnd(pid, start, 5000))) throw new TargetError(`QEMU process ${pid} did not exit`, true);
  }

  /** SIGKILLs every process whose command line names the instance directory, and waits for them to end. */
  async killAll(dir: string): Promise<void> {
    const pids = await qemuProcessesNaming(dir, path.basename(this.cfg.qemuSystem));
    const starts = await Promise.all(pids.map((pid) => this.instanceStart(dir, pid)));
    for (const pid of pids) signal(pid, "SIGKILL");
    for (const [i, pid] of pids.entries()) await waitEnd(pid, starts[i], 5000);
  }

  /** The start time of `pid` if it is this instance's QEMU (its command line names `dir`). */
  private async instanceStart(dir: string, pid: number): Promise<string | undefined> {
    const start = await liveStartTime(pid);
    return start !== undefined && (await isInstanceProcess(pid, dir)) && (await liveStartTime(pid)) === start ? start : undefined;
  }

  qmp<T>(dir: string, command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<T> {
    return this.qmpLock.run(dir, () => qmpExecute<T>(this.layout.qmpSocket(dir), command, args, { timeoutMs }));
  }

  private binaryError(bin: string, err: unknown, what: string): TargetError {
    if (isEnoent(err)) return new TargetError(INSTALL_HINT, false, "QEMU_NOT_INSTALLED");
    return new TargetError(`${what} failed (${bin}): ${errMessage(err)}`, false);
  }
}

/** QEMU option value: commas are doubled. */
function qemuOpt(v: string): string {
  return v.replace(/,/g, ",,");
}

/** sshPort/rdpPort mirror the forwards of guest 22 and 3389. */
function syncLegacyPorts(meta: LocalInstanceMeta): void {
  meta.sshPort = meta.forwards.find((f) => f.guestPort === 22)?.hostPort || undefined;
  meta.rdpPort = meta.forwards.find((f) => f.guestPort === 3389)?.hostPort || undefined;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host: "127.0.0.1", port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The previous port when it is still free, else a new free one (never one in `avoid`). */
async function reusePort(previous: number | undefined, avoid: ReadonlySet<number>): Promise<number> {
  if (previous && !avoid.has(previous) && (await portFree(previous))) return previous;
  for (;;) {
    const p = await freePort();
    if (!avoid.has(p)) return p;
  }
}

/** Waits until the process that started at `start` has ended (no `start`: nothing to wait for). */
async function waitEnd(pid: number, start: string | undefined, timeoutMs: number): Promise<boolean> {
  if (start === undefined) return true;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await liveStartTime(pid)) !== start) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}
