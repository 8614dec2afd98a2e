import fsp from "node:fs/promises";
import path from "node:path";
import type { Config } from "../../config";
import { TargetError, type ConsoleScreenshot, type InstanceProviderState, type InstanceStatus, type LaunchRequest, type LaunchResult } from "../target";
import { QmpError } from "../qmp";
import { FORWARD_BIND_ADDRESS, LOCAL_INTERNET_UNSUPPORTED, guestPorts, type GuestForward } from "../guest-network";
import { SAFE_ID, checkId, type LocalInstanceMeta, type LocalLayout } from "./layout";
import type { Qemu } from "./qemu";
import { KeyedLock, errMessage, exists, expectOwnDir, ignoreExists, privateDir, readNoFollow, tail, type LocalTargetLogger, type RunAsUser } from "./host";

/**
 * The machine lifecycle on the local host: launch on an overlay of an imported image, describe,
 * start, stop, terminate, and what can be read from a running machine (serial console, firmware
 * log, screenshot, its forwarded ports). Calls on one instance run one at a time.
 *
 * Instance states: meta.json missing → "terminated" when a tombstone exists, else "lost";
 * process gone → "stopped" after stopInstance, else "lost" (crash, kill, host reboot);
 * process alive → "stopping" while stopInstance runs, else QMP query-status (running → running,
 * paused and similar → stopped, shutdown → stopping; QMP not answering → pending).
 *
 * Screenshots: the only place QEMU writes after dropping to the -runas user is screendump output,
 * a per-instance 0700 directory owned by that user under <tmpdir>/reclo-screens (0711), read back
 * without following links.
 */

export interface LocalInstanceSummary {
  instanceId: string;
  state: InstanceProviderState;
  meta?: LocalInstanceMeta;
}

const GUEST_ADDRESS = "10.0.2.15";
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const MAX_SCREENSHOT_BYTES = 64 * 1024 * 1024;

export class LocalMachines {
  private readonly locks = new KeyedLock();

  constructor(
    private readonly cfg: Config["local"],
    private readonly layout: LocalLayout,
    private readonly qemu: Qemu,
    private readonly log: LocalTargetLogger,
  ) {}

  /** The host forwards of an instance (also of an isolated one: the product checks its services through them). */
  async forwards(instanceId: string): Promise<GuestForward[]> {
    const meta = await this.layout.requireMeta(instanceId);
    return meta.forwards.map((f) => ({ ...f }));
  }

  /**
   * Idempotent per idempotencyKey: an existing live VM is returned as is; an existing VM whose process
   * is gone (stopped, crashed, killed) is started again on its own overlay, so no disk is lost.
   */
  async launch(req: LaunchRequest): Promise<LaunchResult> {
    checkId(req.idempotencyKey, "idempotency key");
    if (req.allowInternet) throw new TargetError(LOCAL_INTERNET_UNSUPPORTED, false, "INTERNET_UNSUPPORTED");
    const ports = guestPorts(req.ports);
    const instanceId = `vm-${req.idempotencyKey}`;
    return this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      const meta = await this.layout.readMeta(instanceId);
      if (meta) {
        if (!(await this.qemu.alivePid(dir, meta))) {
          this.log.info({ instanceId }, "launch: instance exists but is not running; starting it on its disk");
          await this.qemu.start(meta);
        }
        return { instanceId, launchedAtMs: startedAtMs(meta) };
      }

      const base = this.layout.imagePath(req.imageId);
      if (!(await exists(base))) throw new TargetError(`image ${req.imageId} not found on the local target`, false, "IMAGE_NOT_FOUND");

      // A directory without meta.json is a launch that died half-way: clear it out.
      await this.qemu.killAll(dir);
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.rm(this.layout.qmpSocket(dir), { force: true });
      await fsp.rm(this.layout.tombstone(instanceId), { force: true });
      await privateDir(this.cfg.dir);
      await fsp.mkdir(this.layout.instancesDir, { recursive: true });
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
      await this.qemu.createOverlay(dir, backing, `${overlay}.part`);
      await fsp.rename(`${overlay}.part`, overlay);

      const fresh: LocalInstanceMeta = {
        instanceId,
        name: req.name,
        idempotencyKey: req.idempotencyKey,
        userId: req.userId,
        imageId: req.imageId,
        pid: 0,
        accel: this.qemu.resolveAccel(),
        isolated: Boolean(req.isolated),
        forwards: ports.map((guestPort) => ({ guestPort, hostPort: 0 })),
        createdAt: new Date().toISOString(),
      };
      await this.layout.writeMeta(fresh);
      await this.qemu.start(fresh);
      return { instanceId, launchedAtMs: startedAtMs(fresh) };
    });
  }

  async describeInstance(instanceId: string): Promise<InstanceStatus> {
    const dir = this.layout.instanceDir(instanceId);
    const meta = await this.layout.readMeta(instanceId);
    if (!meta) {
      const state = (await exists(this.layout.tombstone(instanceId))) ? "terminated" : "lost";
      return { state };
    }
    const addresses: InstanceStatus = {
      state: "lost",
      publicAddress: meta.isolated ? undefined : userAddress(meta.forwards),
      privateAddress: GUEST_ADDRESS,
      zone: "local",
    };
    const pid = await this.qemu.alivePid(dir, meta);
    if (!pid) {
      return { ...addresses, state: (await exists(path.join(dir, "stopped"))) ? "stopped" : "lost" };
    }
    if (await this.stoppingMarker(dir)) return { ...addresses, state: "stopping" };
    try {
      const status = await this.qemu.qmp<{ status: string; running: boolean }>(dir, "query-status", undefined, 5000);
      return { ...addresses, state: mapRunState(status.status) };
    } catch (err) {
      this.log.debug({ instanceId, err: errMessage(err) }, "QMP query-status failed");
      return { ...addresses, state: (await this.qemu.alivePid(dir, meta)) ? "pending" : "lost" };
    }
  }

  async startInstance(instanceId: string): Promise<void> {
    await this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      const meta = await this.layout.requireMeta(instanceId);
      if (await this.qemu.alivePid(dir, meta)) {
        const status = await this.qemu.qmp<{ status: string }>(dir, "query-status", undefined, 5000).catch(() => undefined);
        if (status && status.status === "paused") await this.qemu.qmp(dir, "cont", undefined, 5000);
        return;
      }
      await this.qemu.start(meta);
    });
  }

  /** ACPI power button, then QMP quit after stopTimeoutMs, then SIGKILL. The overlay is kept. */
  async stopInstance(instanceId: string): Promise<void> {
    await this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      const meta = await this.layout.requireMeta(instanceId);
      const pid = await this.qemu.alivePid(dir, meta);
      if (pid) {
        await fsp.writeFile(path.join(dir, "stopping"), JSON.stringify({ at: new Date().toISOString(), pid }));
        const started = Date.now();
        let how = "powerdown";
        await this.qemu.qmp(dir, "system_powerdown", undefined, 5000).catch((err: unknown) => this.log.debug({ instanceId, err: errMessage(err) }, "system_powerdown failed"));
        if (!(await this.qemu.waitExit(dir, pid, this.cfg.stopTimeoutMs))) {
          how = "quit";
          this.log.info({ instanceId, timeoutMs: this.cfg.stopTimeoutMs }, "guest did not power off in time; quitting QEMU");
          await this.qemu.forceExit(dir, pid);
        }
        this.log.info({ instanceId, how, ms: Date.now() - started }, "local instance stopped");
      }
      await fsp.writeFile(path.join(dir, "stopped"), JSON.stringify({ at: new Date().toISOString() }));
      await fsp.rm(path.join(dir, "stopping"), { force: true });
      await fsp.rm(path.join(dir, "qemu.pid"), { force: true });
      await fsp.rm(this.layout.qmpSocket(dir), { force: true });
      await this.removeScreenDir(dir);
    });
  }

  /** Kills the VM and deletes its directory; leaves a tombstone so describeInstance says "terminated". */
  /** Terminates the machine a launch under this key made (vm-<key>), recorded or not; what it removed. */
  async discardLaunch(idempotencyKey: string): Promise<string[]> {
    const instanceId = `vm-${checkId(idempotencyKey, "idempotency key")}`;
    if (!(await exists(this.layout.instanceDir(instanceId)))) return [];
    await this.terminateInstance(instanceId);
    return [`terminated instance ${instanceId}`];
  }

  async terminateInstance(instanceId: string): Promise<void> {
    await this.locks.run(instanceId, async () => {
      const dir = this.layout.instanceDir(instanceId);
      if (await exists(dir)) {
        const meta = await this.layout.readMeta(instanceId);
        const pid = meta ? await this.qemu.alivePid(dir, meta) : undefined;
        if (pid) await this.qemu.forceExit(dir, pid, 3000);
        await this.qemu.killAll(dir);
        await fsp.rm(dir, { recursive: true, force: true });
        this.log.info({ instanceId }, "local instance terminated");
      }
      await fsp.rm(this.layout.qmpSocket(dir), { force: true });
      await this.removeScreenDir(dir);
      await fsp.mkdir(this.layout.tombstoneDir, { recursive: true });
      await fsp.writeFile(this.layout.tombstone(instanceId), JSON.stringify({ at: new Date().toISOString() }));
    });
  }

  async consoleOutput(instanceId: string): Promise<string> {
    return tail(path.join(this.layout.instanceDir(instanceId), "serial.log"));
  }

  async firmwareLog(instanceId: string): Promise<string> {
    return tail(path.join(this.layout.instanceDir(instanceId), "firmware.log"));
  }

  async serviceEndpoints(instanceId: string, ports: number[]): Promise<{ guestPort: number; host: string; port: number }[]> {
    // Every machine, isolated or not, has loopback forwards of its declared ports (guest-network.ts).
    const hostPorts = new Map((await this.forwards(instanceId)).filter((f) => f.hostPort).map((f) => [f.guestPort, f.hostPort]));
    return ports.filter((p) => hostPorts.has(p)).map((guestPort) => ({ guestPort, host: FORWARD_BIND_ADDRESS, port: hostPorts.get(guestPort)! }));
  }

  /** A PNG: QEMU's screendump. */
  async screenshot(instanceId: string): Promise<ConsoleScreenshot> {
    const dir = this.layout.instanceDir(instanceId);
    const meta = await this.layout.readMeta(instanceId);
    if (!meta || !(await this.qemu.alivePid(dir, meta))) throw new TargetError(`instance ${instanceId} is not running`, false, "NOT_RUNNING");
    const runAs = await this.qemu.runAs();
    const screens = await this.prepareScreenDir(dir, runAs);
    const file = path.join(screens, "screenshot.png");
    await fsp.rm(file, { force: true });
    let png: Buffer;
    try {
      try {
        await this.qemu.qmp(dir, "screendump", { filename: file, format: "png" }, 15_000);
      } catch (err) {
        if (!(await this.qemu.alivePid(dir, meta))) throw new TargetError(`instance ${instanceId} is not running`, false, "NOT_RUNNING");
        throw new TargetError(`screendump of ${instanceId}: ${errMessage(err)}`, !(err instanceof QmpError && err.errorClass === "GenericError"));
      }
      // Written by the unprivileged QEMU: never follow a link it may have put there instead.
      png = await readNoFollow(file, MAX_SCREENSHOT_BYTES);
    } finally {
      if (runAs) await fsp.rm(file, { force: true });
    }
    if (png.length < 24 || !png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new TargetError(`screendump of ${instanceId} did not produce a PNG`, true);
    return { bytes: png, contentType: "image/png" };
  }

  /** Every instance on this host with its state (for a reconciler). */
  async listInstances(): Promise<LocalInstanceSummary[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.layout.instancesDir);
    } catch {
      return [];
    }
    const out: LocalInstanceSummary[] = [];
    for (const name of names.sort()) {
      if (!SAFE_ID.test(name)) continue;
      const meta = await this.layout.readMeta(name);
      const { state } = await this.describeInstance(name);
      out.push({ instanceId: name, state, meta });
    }
    return out;
  }

  /** The screendump directory, created for the -runas user (0700) under a 0711 parent of ours. */
  private async prepareScreenDir(dir: string, runAs: RunAsUser | undefined): Promise<string> {
    const screens = this.layout.screenDir(dir, runAs);
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
    const runAs = await this.qemu.runAs().catch(() => undefined);
    if (runAs) await fsp.rm(this.layout.screenDir(dir, runAs), { recursive: true, force: true });
  }

  private async stoppingMarker(dir: string): Promise<boolean> {
    try {
      const st = await fsp.stat(path.join(dir, "stopping"));
      return Date.now() - st.mtimeMs < this.cfg.stopTimeoutMs + 30_000;
    } catch {
      return false;
    }
  }
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

/** The address shown to the user: RDP when forwarded, else the first forward. */
function userAddress(forwards: readonly GuestForward[]): string | undefined {
  const f = forwards.find((x) => x.guestPort === 3389 && x.hostPort) ?? forwards.find((x) => x.hostPort);
  return f ? `127.0.0.1:${f.hostPort}` : undefined;
}

/** When the machine's QEMU was last started (an idempotent launch of a running one: that start). */
function startedAtMs(meta: LocalInstanceMeta): number | undefined {
  const ms = meta.startedAt ? Date.parse(meta.startedAt) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
}
