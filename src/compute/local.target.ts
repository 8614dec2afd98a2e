import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Transform, Writable, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Config } from "../config";
import {
  TargetError,
  type ComposedImage,
  type ComputeTarget,
  type ImportStatus,
  type InstanceProviderState,
  type InstanceStatus,
  type LaunchRequest,
  type LaunchResult,
} from "./target";
import { QmpError, qmpExecute } from "./qmp";
import { FORWARD_BIND_ADDRESS, LOCAL_INTERNET_UNSUPPORTED, guestPorts, qemuNetworkArgs, type GuestForward } from "./guest-network";

/**
 * The local QEMU/KVM host as a compute target. Everything lives under `local.dir`:
 *
 *   images/<imageId>.qcow2            pristine base image (imageId = img-<recoveryId>)
 *   instances/<instanceId>/           one VM (instanceId = vm-<recoveryId>), mode 0700
 *     base.qcow2                      hard link to the base image, so deleteImage never breaks a VM
 *     overlay.qcow2                   the VM's disk (backing file: base.qcow2)
 *     meta.json qemu.pid qmp.sock serial.log firmware.log
 *     stopped | stopping              markers written by stopInstance
 *   terminated/<instanceId>           tombstone written by terminateInstance
 *   tmp/<recoveryId>.raw              download in progress
 *
 * Confinement: the network policy of guest-network.ts (restricted user networking, loopback-only
 * forwards of the declared ports), `-sandbox on` (no start without it), and, when the worker is
 * root, `-runas <QEMU_RUNAS>`: QEMU opens the disk, the serial log, the pid file and the QMP socket
 * as root, then drops to that user. The local-target directory is 0700, the QMP socket 0600. The
 * only place QEMU writes afterwards is screendump output: a per-instance 0700 directory owned by
 * that user under <tmpdir>/reclo-screens (0711), read back without following links.
 *
 * QEMU runs with -daemonize, so VMs outlive the API/worker process. All state is derived from
 * these files and the pid (checked against /proc/<pid>/cmdline, which must name the instance
 * directory, so a reused pid is never mistaken for the VM); a new LocalTarget in a new process
 * re-attaches to everything.
 *
 * Instance states: meta.json missing → "terminated" when a tombstone exists, else "lost";
 * process gone → "stopped" after stopInstance, else "lost" (crash, kill, host reboot);
 * process alive → "stopping" while stopInstance runs, else QMP query-status (running → running,
 * paused and similar → stopped, shutdown → stopping; QMP not answering → pending).
 */

type LogFn = (obj: Record<string, unknown>, msg?: string) => void;
export interface LocalTargetLogger {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  debug: LogFn;
}

export interface LocalTargetOptions {
  local: Config["local"];
  s3: S3Client;
  logger?: LocalTargetLogger;
}

export interface LocalInstanceMeta {
  instanceId: string;
  name: string;
  recoveryId: string;
  userId: string;
  imageId: string;
  /** 0 until QEMU has started once. */
  pid: number;
  /** 127.0.0.1:hostPort → guest guestPort, one per declared port: the only way into the guest. */
  forwards: GuestForward[];
  /** The forwards of guest 22 and 3389 (kept for existing readers; the same as in `forwards`). */
  sshPort?: number;
  rdpPort?: number;
  accel: "kvm" | "tcg";
  isolated: boolean;
  createdAt: string;
  startedAt?: string;
}

export interface LocalInstanceSummary {
  instanceId: string;
  state: InstanceProviderState;
  meta?: LocalInstanceMeta;
}

const INSTALL_HINT = "QEMU is not installed: apt-get install qemu-system-x86 qemu-utils (or run `npm run services -- up --with-qemu`)";
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const CONSOLE_TAIL_BYTES = 64 * 1024;
const GUEST_ADDRESS = "10.0.2.15";
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** `-sandbox on` is required: QEMU never starts without its seccomp filter. spawn=deny and
 * elevateprivileges=deny would break -daemonize (fork, setsid) and -runas (setuid). */
const SANDBOX = "on,obsolete=deny,resourcecontrol=deny";
const SCREENS_DIR = "reclo-screens";
const MAX_SCREENSHOT_BYTES = 64 * 1024 * 1024;

const noop = () => {};
const silent: LocalTargetLogger = { info: noop, warn: noop, error: noop, debug: noop };

interface ActiveImport {
  promise: Promise<void>;
  progress: number;
  message: string;
  abort: AbortController;
}

export class LocalTarget implements ComputeTarget {
  readonly kind = "LOCAL" as const;
  private readonly cfg: Config["local"];
  private readonly s3: S3Client;
  private readonly log: LocalTargetLogger;
  private readonly imports = new Map<string, ActiveImport>();
  private readonly importFailures = new Map<string, string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private runAsLookup?: Promise<RunAsUser | undefined>;

  constructor(opts: LocalTargetOptions) {
    this.cfg = opts.local;
    this.s3 = opts.s3;
    this.log = opts.logger ?? silent;
  }

  // ---------------------------------------------------------------- paths

  private get imagesDir() {
    return path.join(this.cfg.dir, "images");
  }
  private get instancesDir() {
    return path.join(this.cfg.dir, "instances");
  }
  private get tmpDir() {
    return path.join(this.cfg.dir, "tmp");
  }
  private get tombstoneDir() {
    return path.join(this.cfg.dir, "terminated");
  }
  imagePath(imageId: string): string {
    return path.join(this.imagesDir, `${checkId(imageId, "image id")}.qcow2`);
  }
  instanceDir(instanceId: string): string {
    return path.join(this.instancesDir, checkId(instanceId, "instance id"));
  }
  /** <dir>/qmp.sock, or a hashed name in the OS temp dir when that path is too long for a unix socket (108 bytes). */
  private qmpSocket(dir: string): string {
    const p = path.join(dir, "qmp.sock");
    if (Buffer.byteLength(p) <= 100) return p;
    return path.join(os.tmpdir(), `reclo-qmp-${createHash("sha256").update(dir).digest("hex").slice(0, 16)}.sock`);
  }
  /** Where QEMU may write screendumps: the instance directory, or a directory of the -runas user. */
  private screenDir(dir: string, runAs: RunAsUser | undefined): string {
    if (!runAs) return dir;
    return path.join(os.tmpdir(), SCREENS_DIR, createHash("sha256").update(dir).digest("hex").slice(0, 24));
  }

  // ---------------------------------------------------------------- availability

  async checkAvailable(): Promise<void> {
    for (const bin of [this.cfg.qemuSystem, this.cfg.qemuImg]) {
      try {
        await run(bin, ["--version"], { timeoutMs: 15_000 });
      } catch (err) {
        this.log.warn({ bin, err: errMessage(err) }, "QEMU binary not runnable");
        throw new TargetError(`${INSTALL_HINT} (${bin}: ${errMessage(err)})`, false, "QEMU_NOT_INSTALLED");
      }
    }
    if (this.cfg.accel === "kvm" && !kvmUsable()) {
      throw new TargetError("QEMU_ACCEL=kvm but /dev/kvm cannot be opened read-write (set QEMU_ACCEL=auto or tcg, or give this user access to /dev/kvm)", false, "KVM_UNAVAILABLE");
    }
    await this.runAs();
    await privateDir(this.cfg.dir);
  }

  /**
   * The user QEMU runs as: QEMU_RUNAS (default reclo-qemu) when this process is root, which is then
   * required; nobody when it is not (QEMU cannot switch users then, and already runs unprivileged).
   */
  private runAs(): Promise<RunAsUser | undefined> {
    this.runAsLookup ??= resolveRunAs(this.cfg.runAs).catch((err: unknown) => {
      this.runAsLookup = undefined; // a user created later is found on the next call
      throw err;
    });
    return this.runAsLookup;
  }

  /** The host forwards of an instance (also of an isolated one: the product checks its services through them). */
  async forwards(instanceId: string): Promise<GuestForward[]> {
    const meta = await this.requireMeta(instanceId);
    return meta.forwards.map((f) => ({ ...f }));
  }

  /** The accelerator a new VM would get here. */
  resolveAccel(): "kvm" | "tcg" {
    if (this.cfg.accel === "auto") return kvmUsable() ? "kvm" : "tcg";
    return this.cfg.accel;
  }

  // ---------------------------------------------------------------- import

  async startImport(recoveryId: string, image: ComposedImage, onProgress?: (percent: number, message?: string) => void, signal?: AbortSignal): Promise<{ importTaskId: string }> {
    checkId(recoveryId, "recovery id");
    const imageId = `img-${recoveryId}`;
    let last = -1;
    const report = (percent: number, message: string) => {
      const p = Math.max(0, Math.min(100, Math.floor(percent)));
      const active = this.imports.get(imageId);
      if (active && p >= active.progress) {
        active.progress = p;
        active.message = message;
      }
      if (p > last) {
        last = p;
        onProgress?.(p, message);
      }
    };

    if (await exists(this.imagePath(imageId))) {
      report(100, "image ready");
      return { importTaskId: imageId };
    }
    let entry = this.imports.get(imageId);
    if (!entry) {
      if (signal?.aborted) throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
      const fresh: ActiveImport = { promise: Promise.resolve(), progress: 0, message: "starting", abort: new AbortController() };
      this.imports.set(imageId, fresh);
      this.importFailures.delete(imageId);
      fresh.promise = this.runImport(recoveryId, imageId, image, fresh.abort.signal, report).then(
        () => void this.imports.delete(imageId),
        (err: unknown) => {
          this.importFailures.set(imageId, errMessage(err));
          this.imports.delete(imageId);
          throw err;
        },
      );
      entry = fresh;
    }
    // Whoever waits for the import (a retried activity joins the running one) may stop it.
    const stop = entry.abort;
    const onAbort = () => stop.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await entry.promise;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    report(100, "image ready");
    return { importTaskId: imageId };
  }

  private async runImport(recoveryId: string, imageId: string, image: ComposedImage, signal: AbortSignal, report: (p: number, m: string) => void): Promise<void> {
    const started = Date.now();
    await fsp.mkdir(this.tmpDir, { recursive: true });
    await fsp.mkdir(this.imagesDir, { recursive: true });
    const raw = path.join(this.tmpDir, `${recoveryId}.raw`);
    const part = `${this.imagePath(imageId)}.part`;
    // Before anything is written: the sparse raw download and the qcow2 made from it both hold the
    // image's data at the peak, and the host keeps its reserve.
    await this.checkCapacity(imageId, image);
    try {
      report(0, "downloading image");
      let res;
      try {
        res = await this.s3.send(new GetObjectCommand({ Bucket: image.bucket, Key: image.key }), { abortSignal: signal });
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name === "NoSuchKey" || name === "NoSuchBucket" || name === "NotFound" || name === "AccessDenied") {
          throw new TargetError(`composed image s3://${image.bucket}/${image.key} cannot be read: ${name}`, false, "IMAGE_SOURCE_MISSING");
        }
        throw new TargetError(`downloading s3://${image.bucket}/${image.key}: ${errMessage(err)}`, true);
      }
      const total = res.ContentLength ?? image.sizeBytes;
      let done = 0;
      const rate = this.cfg.importRateLimit;
      const downloadStarted = Date.now();
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          done += chunk.length;
          if (total > 0) report((50 * done) / total, `downloading ${mib(done)}/${mib(total)} MiB`);
          // LOCAL_IMPORT_RATE_LIMIT: hold the chunk back until the average rate is within the limit.
          const wait = rate > 0 ? downloadStarted + (done / rate) * 1000 - Date.now() : 0;
          if (wait > 0) setTimeout(() => cb(null, chunk), wait);
          else cb(null, chunk);
        },
      });
      try {
        // Sparse: all-zero blocks become holes, so an empty 2 TiB disk costs what its data costs.
        await pipeline(res.Body as Readable, counter, sparseFileWriter(raw, total), { signal });
      } catch (err) {
        if (signal.aborted) throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
        throw new TargetError(`downloading s3://${image.bucket}/${image.key}: ${errMessage(err)}`, true);
      }
      if (res.ContentLength !== undefined && done !== res.ContentLength) {
        throw new TargetError(`download of s3://${image.bucket}/${image.key} was short: ${done} of ${res.ContentLength} bytes`, true);
      }
      report(50, "converting to qcow2");
      const downloadedMs = Date.now() - started;

      await fsp.rm(part, { force: true });
      await convertWithProgress(this.cfg.qemuImg, raw, part, signal, (p) => report(50 + Math.min(p, 99.9) / 2, `converting to qcow2 ${p.toFixed(0)}%`));
      await fsp.rename(part, this.imagePath(imageId));
      this.log.info({ imageId, bytes: done, downloadedMs, totalMs: Date.now() - started }, "local image imported");
    } catch (err) {
      await fsp.rm(part, { force: true });
      if (signal.aborted && !(err instanceof TargetError && err.code === "IMPORT_CANCELLED")) {
        throw new TargetError(`import ${imageId} was cancelled`, false, "IMPORT_CANCELLED");
      }
      throw err;
    } finally {
      await fsp.rm(raw, { force: true });
    }
  }

  /** Refuses (INSUFFICIENT_CAPACITY, not retryable) an import the local file system has no room for. */
  private async checkCapacity(imageId: string, image: ComposedImage): Promise<void> {
    const data = Math.min(image.dataBytes ?? image.sizeBytes, image.sizeBytes);
    // Raw + qcow2 at the peak; qcow2 metadata is about 128 KiB per GiB of image (64 KiB clusters).
    const needed = 2 * data + Math.ceil(image.sizeBytes / 8192) + (this.cfg.diskReserveBytes ?? 0);
    const free = await freeBytes(this.cfg.dir);
    if (free < needed) {
      this.log.warn({ imageId, needed, free, reserve: this.cfg.diskReserveBytes ?? 0 }, "local import refused: not enough disk space");
      throw new TargetError(
        `not enough disk space on the local target for ${imageId}: it needs ${mib(needed)} MiB free (image data twice, plus the ${mib(this.cfg.diskReserveBytes ?? 0)} MiB reserve), ${mib(free)} MiB are`,
        false,
        "INSUFFICIENT_CAPACITY",
      );
    }
  }

  async describeImport(importTaskId: string): Promise<ImportStatus> {
    if (await exists(this.imagePath(importTaskId))) return { state: "completed", progress: 100, imageId: importTaskId };
    const active = this.imports.get(importTaskId);
    if (active) return { state: "active", progress: active.progress, message: active.message };
    const failure = this.importFailures.get(importTaskId);
    return { state: "failed", progress: 0, message: failure ?? `import ${importTaskId} not found` };
  }

  async cancelImport(importTaskId: string): Promise<void> {
    checkId(importTaskId, "import id");
    const active = this.imports.get(importTaskId);
    if (active) {
      active.abort.abort();
      await active.promise.catch(noop);
    }
    const recoveryId = importTaskId.replace(/^img-/, "");
    await fsp.rm(`${this.imagePath(importTaskId)}.part`, { force: true });
    await fsp.rm(path.join(this.tmpDir, `${recoveryId}.raw`), { force: true });
  }

  async discardImport(recoveryId: string): Promise<string[]> {
    // Names are derived from the recovery id, so nothing depends on what the workflow recorded.
    const imageId = `img-${checkId(recoveryId, "recovery id")}`;
    const removed: string[] = [];
    if (this.imports.has(imageId)) removed.push(`cancelled import ${imageId}`);
    await this.cancelImport(imageId);
    if (await exists(this.imagePath(imageId))) removed.push(`deleted image ${imageId}`);
    await this.deleteImage(imageId);
    return removed;
  }

  async deleteImage(imageId: string): Promise<void> {
    // Instances keep their own hard link (base.qcow2), so this never pulls a disk from under a VM.
    await fsp.rm(this.imagePath(imageId), { force: true });
    await fsp.rm(`${this.imagePath(imageId)}.part`, { force: true });
  }

  // ---------------------------------------------------------------- instances

  /**
   * Idempotent per recoveryId: an existing live VM is returned as is; an existing VM whose process
   * is gone (stopped, crashed, killed) is started again on its own overlay, so no disk is lost.
   */
  async launch(req: LaunchRequest): Promise<LaunchResult> {
    checkId(req.recoveryId, "recovery id");
    if (req.allowInternet) throw new TargetError(LOCAL_INTERNET_UNSUPPORTED, false, "INTERNET_UNSUPPORTED");
    const ports = guestPorts(req.ports);
    const instanceId = `vm-${req.recoveryId}`;
    return this.withLock(instanceId, async () => {
      const dir = this.instanceDir(instanceId);
      const meta = await this.readMeta(instanceId);
      if (meta) {
        if (!(await this.alivePid(dir, meta))) {
          this.log.info({ instanceId }, "launch: instance exists but is not running; starting it on its disk");
          await this.spawnQemu(meta);
        }
        return { instanceId };
      }

      const base = this.imagePath(req.imageId);
      if (!(await exists(base))) throw new TargetError(`image ${req.imageId} not found on the local target`, false, "IMAGE_NOT_FOUND");

      // A directory without meta.json is a launch that died half-way: clear it out.
      await this.killAll(dir);
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.rm(this.qmpSocket(dir), { force: true });
      await fsp.rm(path.join(this.tombstoneDir, instanceId), { force: true });
      await privateDir(this.cfg.dir);
      await fsp.mkdir(this.instancesDir, { recursive: true });
      await fsp.mkdir(dir, { mode: 0o700 });
      await fsp.chmod(dir, 0o700);

      let backing = "base.qcow2";
      try {
        await fsp.link(base, path.join(dir, "base.qcow2"));
      } catch (err) {
        this.log.warn({ instanceId, err: errMessage(err) }, "cannot hard-link the base image; the overlay references it directly");
        backing = base;
      }
      const overlay = path.join(dir, "overlay.qcow2");
      try {
        await run(this.cfg.qemuImg, ["create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", `${overlay}.part`], { timeoutMs: 60_000, cwd: dir });
      } catch (err) {
        throw this.binaryError(this.cfg.qemuImg, err, "creating the overlay");
      }
      await fsp.rename(`${overlay}.part`, overlay);

      const fresh: LocalInstanceMeta = {
        instanceId,
        name: req.name,
        recoveryId: req.recoveryId,
        userId: req.userId,
        imageId: req.imageId,
        pid: 0,
        accel: this.resolveAccel(),
        isolated: Boolean(req.isolated),
        forwards: ports.map((guestPort) => ({ guestPort, hostPort: 0 })),
        createdAt: new Date().toISOString(),
      };
      await this.writeMeta(fresh);
      await this.spawnQemu(fresh);
      return { instanceId };
    });
  }

  async describeInstance(instanceId: string): Promise<InstanceStatus> {
    const dir = this.instanceDir(instanceId);
    const meta = await this.readMeta(instanceId);
    if (!meta) {
      const state = (await exists(path.join(this.tombstoneDir, instanceId))) ? "terminated" : "lost";
      return { state };
    }
    const addresses: InstanceStatus = {
      state: "lost",
      publicAddress: meta.isolated ? undefined : userAddress(meta.forwards),
      privateAddress: GUEST_ADDRESS,
      zone: "local",
    };
    const pid = await this.alivePid(dir, meta);
    if (!pid) {
      return { ...addresses, state: (await exists(path.join(dir, "stopped"))) ? "stopped" : "lost" };
    }
    if (await this.stoppingMarker(dir)) return { ...addresses, state: "stopping" };
    try {
      const status = await this.qmp<{ status: string; running: boolean }>(dir, "query-status", undefined, 5000);
      return { ...addresses, state: mapRunState(status.status) };
    } catch (err) {
      this.log.debug({ instanceId, err: errMessage(err) }, "QMP query-status failed");
      return { ...addresses, state: (await this.alivePid(dir, meta)) ? "pending" : "lost" };
    }
  }

  async startInstance(instanceId: string): Promise<void> {
    await this.withLock(instanceId, async () => {
      const dir = this.instanceDir(instanceId);
      const meta = await this.requireMeta(instanceId);
      if (await this.alivePid(dir, meta)) {
        const status = await this.qmp<{ status: string }>(dir, "query-status", undefined, 5000).catch(() => undefined);
        if (status && status.status === "paused") await this.qmp(dir, "cont", undefined, 5000);
        return;
      }
      await this.spawnQemu(meta);
    });
  }

  /** ACPI power button, then QMP quit after stopTimeoutMs, then SIGKILL. The overlay is kept. */
  async stopInstance(instanceId: string): Promise<void> {
    await this.withLock(instanceId, async () => {
      const dir = this.instanceDir(instanceId);
      const meta = await this.requireMeta(instanceId);
      const pid = await this.alivePid(dir, meta);
      if (pid) {
        await fsp.writeFile(path.join(dir, "stopping"), JSON.stringify({ at: new Date().toISOString(), pid }));
        const started = Date.now();
        let how = "powerdown";
        await this.qmp(dir, "system_powerdown", undefined, 5000).catch((err: unknown) => this.log.debug({ instanceId, err: errMessage(err) }, "system_powerdown failed"));
        if (!(await this.waitExit(dir, pid, this.cfg.stopTimeoutMs))) {
          how = "quit";
          this.log.info({ instanceId, timeoutMs: this.cfg.stopTimeoutMs }, "guest did not power off in time; quitting QEMU");
          await this.forceExit(dir, pid);
        }
        this.log.info({ instanceId, how, ms: Date.now() - started }, "local instance stopped");
      }
      await fsp.writeFile(path.join(dir, "stopped"), JSON.stringify({ at: new Date().toISOString() }));
      await fsp.rm(path.join(dir, "stopping"), { force: true });
      await fsp.rm(path.join(dir, "qemu.pid"), { force: true });
      await fsp.rm(this.qmpSocket(dir), { force: true });
      await this.removeScreenDir(dir);
    });
  }

  /** Kills the VM and deletes its directory; leaves a tombstone so describeInstance says "terminated". */
  async terminateInstance(instanceId: string): Promise<void> {
    await this.withLock(instanceId, async () => {
      const dir = this.instanceDir(instanceId);
      if (await exists(dir)) {
        const meta = await this.readMeta(instanceId);
        const pid = meta ? await this.alivePid(dir, meta) : undefined;
        if (pid) await this.forceExit(dir, pid, 3000);
        await this.killAll(dir);
        await fsp.rm(dir, { recursive: true, force: true });
        this.log.info({ instanceId }, "local instance terminated");
      }
      await fsp.rm(this.qmpSocket(dir), { force: true });
      await this.removeScreenDir(dir);
      await fsp.mkdir(this.tombstoneDir, { recursive: true });
      await fsp.writeFile(path.join(this.tombstoneDir, instanceId), JSON.stringify({ at: new Date().toISOString() }));
    });
  }

  async deleteNetworkGuard(_securityGroupId: string): Promise<void> {}

  async consoleOutput(instanceId: string): Promise<string> {
    return tail(path.join(this.instanceDir(instanceId), "serial.log"));
  }

  async firmwareLog(instanceId: string): Promise<string> {
    return tail(path.join(this.instanceDir(instanceId), "firmware.log"));
  }

  async serviceEndpoints(instanceId: string, ports: number[]): Promise<{ guestPort: number; host: string; port: number }[]> {
    // Every machine, isolated or not, has loopback forwards of its declared ports (guest-network.ts).
    const hostPorts = new Map((await this.forwards(instanceId)).filter((f) => f.hostPort).map((f) => [f.guestPort, f.hostPort]));
    return ports.filter((p) => hostPorts.has(p)).map((guestPort) => ({ guestPort, host: FORWARD_BIND_ADDRESS, port: hostPorts.get(guestPort)! }));
  }

  async screenshot(instanceId: string): Promise<Buffer> {
    const dir = this.instanceDir(instanceId);
    const meta = await this.readMeta(instanceId);
    if (!meta || !(await this.alivePid(dir, meta))) throw new TargetError(`instance ${instanceId} is not running`, false, "NOT_RUNNING");
    const runAs = await this.runAs();
    const screens = await this.prepareScreenDir(dir, runAs);
    const file = path.join(screens, "screenshot.png");
    await fsp.rm(file, { force: true });
    let png: Buffer;
    try {
      try {
        await this.qmp(dir, "screendump", { filename: file, format: "png" }, 15_000);
      } catch (err) {
        if (!(await this.alivePid(dir, meta))) throw new TargetError(`instance ${instanceId} is not running`, false, "NOT_RUNNING");
        throw new TargetError(`screendump of ${instanceId}: ${errMessage(err)}`, !(err instanceof QmpError && err.errorClass === "GenericError"));
      }
      // Written by the unprivileged QEMU: never follow a link it may have put there instead.
      png = await readNoFollow(file, MAX_SCREENSHOT_BYTES);
    } finally {
      if (runAs) await fsp.rm(file, { force: true });
    }
    if (png.length < 24 || !png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new TargetError(`screendump of ${instanceId} did not produce a PNG`, true);
    return png;
  }

  /** Every instance on this host with its state (for a reconciler). */
  async listInstances(): Promise<LocalInstanceSummary[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.instancesDir);
    } catch {
      return [];
    }
    const out: LocalInstanceSummary[] = [];
    for (const name of names.sort()) {
      if (!SAFE_ID.test(name)) continue;
      const meta = await this.readMeta(name);
      const { state } = await this.describeInstance(name);
      out.push({ instanceId: name, state, meta });
    }
    return out;
  }

  // ---------------------------------------------------------------- QEMU process

  private async spawnQemu(meta: LocalInstanceMeta): Promise<void> {
    const dir = this.instanceDir(meta.instanceId);
    const overlay = path.join(dir, "overlay.qcow2");
    if (!(await exists(overlay))) throw new TargetError(`the disk of ${meta.instanceId} is missing (${overlay})`, false, "DISK_MISSING");
    const runAs = await this.runAs();
    let accel = this.resolveAccel();
    let lastError = "";
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
      await fsp.rm(this.qmpSocket(dir), { force: true });
      const args = this.qemuArgs(meta, dir, runAs);
      const started = Date.now();
      try {
        await run(this.cfg.qemuSystem, args, { timeoutMs: 60_000, cwd: dir, daemon: true });
      } catch (err) {
        lastError = errMessage(err);
        if (isEnoent(err)) throw new TargetError(INSTALL_HINT, false, "QEMU_NOT_INSTALLED");
        await this.killAll(dir);
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
      meta.pid = pid;
      meta.startedAt = new Date().toISOString();
      await this.writeMeta(meta);
      await fsp.rm(path.join(dir, "stopped"), { force: true });
      await fsp.rm(path.join(dir, "stopping"), { force: true });
      this.log.info({ instanceId: meta.instanceId, pid, accel, forwards: meta.forwards, runAs: runAs?.name, isolated: meta.isolated, ms: Date.now() - started }, "local instance started");
      return;
    }
    throw new TargetError(`QEMU failed to start ${meta.instanceId}: ${lastError}`, true, "QEMU_START_FAILED");
  }

  private qemuArgs(meta: LocalInstanceMeta, dir: string, runAs: RunAsUser | undefined): string[] {
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
      `unix:${qemuOpt(this.qmpSocket(dir))},server=on,wait=off`,
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
    const sock = this.qmpSocket(dir);
    const st = await fsp.lstat(sock).catch(() => undefined);
    const me = typeof process.getuid === "function" ? process.getuid() : undefined;
    if (!st?.isSocket() || (me !== undefined && st.uid !== me)) {
      await this.killAll(dir);
      throw new TargetError(`the QMP socket of ${instanceId} (${sock}) is missing or not ours`, false, "QMP_SOCKET_UNSAFE");
    }
    await fsp.chmod(sock, 0o600);
  }

  /** The screendump directory, created for the -runas user (0700) under a 0711 parent of ours. */
  private async prepareScreenDir(dir: string, runAs: RunAsUser | undefined): Promise<string> {
    const screens = this.screenDir(dir, runAs);
    if (!runAs) return screens;
    const parent = path.dirname(screens);
    await fsp.mkdir(parent, { mode: 0o711 }).catch(ignoreExists);
    await expectOwnDir(parent, process.getuid?.() ?? 0);
    await fsp.chmod(parent, 0o711);
    await fsp.mkdir(screens, { mode: 0o700 }).catch(ignoreExists);
    const st = await fsp.lstat(screens);
    if (!st.isDirectory() || st.isSymbolicLink()) throw new TargetError(`${screens} is not a directory`, false, "SCREEN_DIR_UNSAFE");
    await fsp.chown(screens, runAs.uid, runAs.gid);
    await fsp.chmod(screens, 0o700);
    return screens;
  }

  private async removeScreenDir(dir: string): Promise<void> {
    const runAs = await this.runAs().catch(() => undefined);
    if (runAs) await fsp.rm(this.screenDir(dir, runAs), { recursive: true, force: true });
  }

  /** The pid of this instance's QEMU when it is alive (pidfile, else meta), checked against /proc. */
  private async alivePid(dir: string, meta: LocalInstanceMeta): Promise<number | undefined> {
    const fromFile = Number((await fsp.readFile(path.join(dir, "qemu.pid"), "utf8").catch(() => "")).trim());
    for (const pid of [fromFile, meta.pid]) {
      if (pid && (await isInstanceProcess(pid, dir))) return pid;
    }
    return undefined;
  }

  private async waitExit(dir: string, pid: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!(await isInstanceProcess(pid, dir))) return true;
      if (Date.now() >= deadline) return false;
      await sleep(100);
    }
  }

  /** QMP quit, then SIGTERM, then SIGKILL. */
  private async forceExit(dir: string, pid: number, graceMs = 5000): Promise<void> {
    await this.qmp(dir, "quit", undefined, 3000).catch(noop);
    if (await this.waitExit(dir, pid, graceMs)) return;
    signal(pid, "SIGTERM");
    if (await this.waitExit(dir, pid, 2000)) return;
    signal(pid, "SIGKILL");
    if (!(await this.waitExit(dir, pid, 5000))) throw new TargetError(`QEMU process ${pid} did not exit`, true);
  }

  /** SIGKILLs every process whose command line names the instance directory. */
  private async killAll(dir: string): Promise<void> {
    const pids = await qemuProcessesNaming(dir, path.basename(this.cfg.qemuSystem));
    for (const pid of pids) signal(pid, "SIGKILL");
    for (const pid of pids) await this.waitExit(dir, pid, 5000);
  }

  private async stoppingMarker(dir: string): Promise<boolean> {
    try {
      const st = await fsp.stat(path.join(dir, "stopping"));
      return Date.now() - st.mtimeMs < this.cfg.stopTimeoutMs + 30_000;
    } catch {
      return false;
    }
  }

  private async qmp<T>(dir: string, command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<T> {
    // One QMP client at a time per VM (QEMU serves one connection at a time).
    const key = `qmp:${dir}`;
    return this.withLock(key, () => qmpExecute<T>(this.qmpSocket(dir), command, args, { timeoutMs }));
  }

  // ---------------------------------------------------------------- files

  private async readMeta(instanceId: string): Promise<LocalInstanceMeta | undefined> {
    let meta: LocalInstanceMeta;
    try {
      meta = JSON.parse(await fsp.readFile(path.join(this.instanceDir(instanceId), "meta.json"), "utf8")) as LocalInstanceMeta;
    } catch {
      return undefined;
    }
    // Written before `forwards` existed: SSH and RDP, as then.
    if (!Array.isArray(meta.forwards)) {
      meta.forwards = [
        { guestPort: 22, hostPort: meta.sshPort ?? 0 },
        { guestPort: 3389, hostPort: meta.rdpPort ?? 0 },
      ];
    }
    return meta;
  }

  private async requireMeta(instanceId: string): Promise<LocalInstanceMeta> {
    const meta = await this.readMeta(instanceId);
    if (!meta) throw new TargetError(`instance ${instanceId} not found on the local target`, false, "INSTANCE_NOT_FOUND");
    return meta;
  }

  private async writeMeta(meta: LocalInstanceMeta): Promise<void> {
    const file = path.join(this.instanceDir(meta.instanceId), "meta.json");
    await fsp.writeFile(`${file}.tmp`, JSON.stringify(meta, null, 2) + "\n", { mode: 0o600 });
    await fsp.rename(`${file}.tmp`, file);
  }

  private binaryError(bin: string, err: unknown, what: string): TargetError {
    if (isEnoent(err)) return new TargetError(INSTALL_HINT, false, "QEMU_NOT_INSTALLED");
    return new TargetError(`${what} failed (${bin}): ${errMessage(err)}`, false);
  }

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(noop);
    this.locks.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }
}

// ------------------------------------------------------------------ helpers

/** The last CONSOLE_TAIL_BYTES of a log file as UTF-8 ("" when missing). */
async function tail(file: string): Promise<string> {
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
async function freeBytes(dir: string): Promise<number> {
  await fsp.mkdir(dir, { recursive: true });
  const st = await fsp.statfs(dir);
  return Number(st.bavail) * Number(st.bsize);
}

/** Zero blocks are holes: file systems allocate in 4 KiB blocks, so smaller runs gain nothing. */
const SPARSE_BLOCK = 64 * 1024;

/**
 * A write stream that leaves every all-zero, block-aligned 64 KiB run as a hole (it seeks instead of
 * writing) and finally sets the file to `size` bytes, so trailing zeros are holes too.
 */
export function sparseFileWriter(file: string, size?: number): Writable {
  let fh: fsp.FileHandle | undefined;
  let pos = 0;
  const writeRun = async (buf: Buffer, at: number) => {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await fh!.write(buf, off, buf.length - off, at + off);
      off += bytesWritten;
    }
  };
  return new Writable({
    highWaterMark: 4 * 1024 * 1024,
    construct(cb) {
      fsp.open(file, "w").then((h) => {
        fh = h;
        cb();
      }, cb);
    },
    write(chunk: Buffer, _enc, cb) {
      (async () => {
        let off = 0;
        while (off < chunk.length) {
          // Up to the next block boundary of the file, so holes line up with the file system's blocks.
          const len = Math.min(chunk.length - off, SPARSE_BLOCK - ((pos + off) % SPARSE_BLOCK));
          let end = off + len;
          if (!isZeroRange(chunk, off, end)) {
            // Extend the data run over following non-zero blocks: one write instead of many.
            while (end < chunk.length) {
              const next = Math.min(chunk.length, end + SPARSE_BLOCK);
              if (isZeroRange(chunk, end, next)) break;
              end = next;
            }
            await writeRun(chunk.subarray(off, end), pos + off);
          }
          off = end;
        }
        pos += chunk.length;
      })().then(() => cb(), cb);
    },
    final(cb) {
      fh!
        .truncate(Math.max(pos, size ?? 0))
        .then(() => fh!.sync())
        .then(() => cb(), cb);
    },
    destroy(err, cb) {
      const h = fh;
      fh = undefined;
      if (!h) return cb(err);
      h.close().then(
        () => cb(err),
        () => cb(err),
      );
    },
  });
}

const ZERO_BLOCK = Buffer.alloc(SPARSE_BLOCK);

/** buf[start, end) is all zero (end - start <= SPARSE_BLOCK; a native compare). */
function isZeroRange(buf: Buffer, start: number, end: number): boolean {
  return buf.compare(ZERO_BLOCK, 0, end - start, start, end) === 0;
}

function checkId(id: string, what: string): string {
  if (!SAFE_ID.test(id)) throw new TargetError(`invalid ${what} "${id}"`, false, "INVALID_ID");
  return id;
}

function mapRunState(status: string): InstanceProviderState {
  switch (status) {
    case "running":
      return "running";
    case "shutdown":
      return "stopping";
    case "prelaunch":
    case "inmigrate":
      return "pending";
    default:
      // paused, suspended, io-error, internal-error, guest-panicked, watchdog, ...: not running.
      return "stopped";
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

/** Alive, not a zombie, and its command line names the instance directory (guards against pid reuse). */
async function isInstanceProcess(pid: number, dir: string): Promise<boolean> {
  try {
    const [cmdline, stat] = await Promise.all([fsp.readFile(`/proc/${pid}/cmdline`), fsp.readFile(`/proc/${pid}/stat`, "utf8")]);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    return cmdline.includes(Buffer.from(dir + path.sep)) || cmdline.includes(Buffer.from(dir + "\0"));
  } catch {
    return false;
  }
}

/** QEMU processes (argv[0] names qemu or the configured binary) whose command line names `dir`. */
async function qemuProcessesNaming(dir: string, binName: string): Promise<number[]> {
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

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** QEMU option value: commas are doubled. */
function qemuOpt(v: string): string {
  return v.replace(/,/g, ",,");
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function mib(n: number): string {
  return (n / 1048576).toFixed(1);
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isEnoent(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === "ENOENT";
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

/** sshPort/rdpPort mirror the forwards of guest 22 and 3389. */
function syncLegacyPorts(meta: LocalInstanceMeta): void {
  meta.sshPort = meta.forwards.find((f) => f.guestPort === 22)?.hostPort || undefined;
  meta.rdpPort = meta.forwards.find((f) => f.guestPort === 3389)?.hostPort || undefined;
}

/** The address shown to the user: RDP when forwarded, else the first forward. */
function userAddress(forwards: readonly GuestForward[]): string | undefined {
  const f = forwards.find((x) => x.guestPort === 3389 && x.hostPort) ?? forwards.find((x) => x.hostPort);
  return f ? `127.0.0.1:${f.hostPort}` : undefined;
}

interface RunAsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Looks the -runas user up (getent, so NSS users count); refuses root and a missing user. */
async function resolveRunAs(name: string | undefined): Promise<RunAsUser | undefined> {
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

/** Creates `dir` (and its parents) and makes it 0700: nothing of the local target is readable by others. */
async function privateDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.chmod(dir, 0o700);
}

function ignoreExists(err: unknown): void {
  if ((err as { code?: string }).code !== "EEXIST") throw err;
}

/** A real directory (no link) owned by `uid`, else a TargetError: someone else prepared this path. */
async function expectOwnDir(dir: string, uid: number): Promise<void> {
  const st = await fsp.lstat(dir);
  if (!st.isDirectory() || st.isSymbolicLink() || st.uid !== uid) throw new TargetError(`${dir} is not a directory owned by us`, false, "SCREEN_DIR_UNSAFE");
}

/** Reads a regular file without following a symbolic link, at most `max` bytes. */
async function readNoFollow(file: string, max: number): Promise<Buffer> {
  const fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > max) throw new TargetError(`${file} is not a screenshot`, true);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

class CommandError extends Error {
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
function run(bin: string, args: string[], opts: { timeoutMs: number; cwd?: string; daemon?: boolean }): Promise<string> {
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

/** `qemu-img convert -p -O qcow2`, reporting the "(NN.NN/100%)" progress it prints. */
function convertWithProgress(qemuImg: string, src: string, dst: string, signal: AbortSignal, onProgress: (percent: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(qemuImg, ["convert", "-p", "-f", "raw", "-O", "qcow2", src, dst], { stdio: ["ignore", "pipe", "pipe"] });
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
