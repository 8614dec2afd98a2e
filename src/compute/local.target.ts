import type { Config } from "../config";
import { TargetError, type ComposedImage, type ComputeTarget, type ConsoleScreenshot, type ImageSource, type ImportStatus, type InstanceStatus, type LaunchRequest, type LaunchResult } from "./target";
import type { GuestForward } from "./guest-network";
import { LocalLayout } from "./local/layout";
import { Qemu } from "./local/qemu";
import { LocalImages } from "./local/images";
import { LocalMachines, type LocalInstanceSummary } from "./local/machines";
import { kvmUsable, privateDir, silentLogger, type LocalTargetLogger } from "./local/host";
import { LocalAccessPoints } from "./local/access-points";

export type { LocalInstanceMeta } from "./local/layout";
export type { LocalInstanceSummary } from "./local/machines";
export type { LocalTargetLogger } from "./local/host";

/**
 * The local QEMU/KVM host as a compute target. The parts, under src/compute/local/:
 *
 *   layout.ts    where everything lives under `local.dir` (images, instances, tombstones, downloads)
 *                and each instance's meta.json;
 *   images.ts    the image import pipeline (download, sparse raw, qemu-img convert, discard), with
 *                sparse-writer.ts (all-zero blocks become holes);
 *   machines.ts  the machine lifecycle (launch, describe, start, stop, terminate, console, screenshot);
 *   qemu.ts      the QEMU processes (arguments, sandbox, -runas, pid file, QMP, waiting, killing);
 *   access-points.ts  each machine's WireGuard access point (a detached reclo-wg process, issue 15);
 *   host.ts      commands, /proc, signals, the -runas user, careful file operations.
 *
 * QEMU runs with -daemonize, so VMs outlive the API/worker process. All state is derived from the
 * files and the pids, so a new LocalTarget in a new process re-attaches to everything. The
 * local-target directory is 0700.
 */

export interface LocalTargetOptions {
  local: Config["local"];
  /** Where imports read the composed image (src/storage builds it on the object store). */
  imageSource: ImageSource;
  logger?: LocalTargetLogger;
}

export class LocalTarget implements ComputeTarget {
  readonly kind = "LOCAL" as const;
  private readonly cfg: Config["local"];
  private readonly layout: LocalLayout;
  private readonly qemu: Qemu;
  private readonly images: LocalImages;
  private readonly machines: LocalMachines;
  /** Private access over WireGuard; absent when `local.vpn` is not configured. */
  readonly access?: LocalAccessPoints;

  constructor(opts: LocalTargetOptions) {
    this.cfg = opts.local;
    const log = opts.logger ?? silentLogger;
    this.layout = new LocalLayout(opts.local.dir);
    this.qemu = new Qemu(opts.local, this.layout, log);
    this.images = new LocalImages(opts.local, this.layout, this.qemu, opts.imageSource, log);
    this.machines = new LocalMachines(opts.local, this.layout, this.qemu, log);
    if (opts.local.vpn) this.access = new LocalAccessPoints(opts.local.vpn, this.layout, log);
  }

  imagePath(imageId: string): string {
    return this.layout.imagePath(imageId);
  }
  instanceDir(instanceId: string): string {
    return this.layout.instanceDir(instanceId);
  }

  async checkAvailable(): Promise<void> {
    await this.qemu.checkInstalled();
    if (this.cfg.accel === "kvm" && !kvmUsable()) {
      throw new TargetError("QEMU_ACCEL=kvm but /dev/kvm cannot be opened read-write (set QEMU_ACCEL=auto or tcg, or give this user access to /dev/kvm)", false, "KVM_UNAVAILABLE");
    }
    await this.qemu.runAs();
    await privateDir(this.cfg.dir);
  }

  /** The accelerator a new VM would get here. */
  resolveAccel(): "kvm" | "tcg" {
    return this.qemu.resolveAccel();
  }

  // ---------------------------------------------------------------- images

  startImport(idempotencyKey: string, image: ComposedImage, onProgress?: (percent: number, message?: string) => void, signal?: AbortSignal): Promise<{ importTaskId: string }> {
    return this.images.startImport(idempotencyKey, image, onProgress, signal);
  }
  describeImport(importTaskId: string): Promise<ImportStatus> {
    return this.images.describeImport(importTaskId);
  }
  cancelImport(importTaskId: string): Promise<void> {
    return this.images.cancelImport(importTaskId);
  }
  discardImport(idempotencyKey: string): Promise<string[]> {
    return this.images.discardImport(idempotencyKey);
  }
  deleteImage(imageId: string): Promise<void> {
    return this.images.deleteImage(imageId);
  }

  // ---------------------------------------------------------------- machines

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    const res = await this.machines.launch(req);
    // A retried launch may have started a stopped machine again, on new loopback ports.
    await this.access?.refreshForwards(res.instanceId);
    return res;
  }
  async discardLaunch(idempotencyKey: string): Promise<string[]> {
    const closed = (await this.access?.closeAccessPoint(`vm-${idempotencyKey}`)) ?? [];
    return [...closed, ...(await this.machines.discardLaunch(idempotencyKey))];
  }
  describeInstance(instanceId: string): Promise<InstanceStatus> {
    return this.machines.describeInstance(instanceId);
  }
  async startInstance(instanceId: string): Promise<void> {
    await this.machines.startInstance(instanceId);
    await this.access?.refreshForwards(instanceId);
  }
  stopInstance(instanceId: string): Promise<void> {
    return this.machines.stopInstance(instanceId);
  }
  /** Closes the machine's access point, then terminates it. */
  async terminateInstance(instanceId: string): Promise<void> {
    await this.access?.closeAccessPoint(instanceId);
    await this.machines.terminateInstance(instanceId);
  }
  async deleteNetworkGuard(_securityGroupId: string): Promise<void> {}
  consoleOutput(instanceId: string): Promise<string> {
    return this.machines.consoleOutput(instanceId);
  }
  firmwareLog(instanceId: string): Promise<string> {
    return this.machines.firmwareLog(instanceId);
  }
  serviceEndpoints(instanceId: string, ports: number[]): Promise<{ guestPort: number; host: string; port: number }[]> {
    return this.machines.serviceEndpoints(instanceId, ports);
  }
  screenshot(instanceId: string): Promise<ConsoleScreenshot> {
    return this.machines.screenshot(instanceId);
  }
  /** The host forwards of an instance (also of an isolated one: the product checks its services through them). */
  forwards(instanceId: string): Promise<GuestForward[]> {
    return this.machines.forwards(instanceId);
  }
  /** Every instance on this host with its state (for a reconciler). */
  listInstances(): Promise<LocalInstanceSummary[]> {
    return this.machines.listInstances();
  }
}
