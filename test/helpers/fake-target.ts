import type {
  AccessPeer,
  AccessPointInfo,
  AccessPointSpec,
  AccessPointStatus,
  AccessPointTarget,
  ComputeTarget,
  ConsoleScreenshot,
  ImportStatus,
  InstanceStatus,
  LaunchRequest,
  LaunchResult,
  TargetKind,
} from "../../src/compute/target";
import { publicKeyOf } from "../../src/access/wireguard";

/**
 * The access points of a FakeTarget, in memory: what was opened (the spec, private key included, so a
 * test can check it matches what the database holds sealed) and the peers each admits now. Every
 * call is recorded; `failWith` makes one method throw.
 */
export class FakeAccess implements AccessPointTarget {
  readonly points = new Map<string, { spec: AccessPointSpec; peers: AccessPeer[]; port: number }>();
  readonly calls: string[] = [];
  failWith: Partial<Record<keyof AccessPointTarget, Error>> = {};
  /** Handshakes the status reports, by public key. */
  readonly handshakes = new Map<string, Date>();
  private nextPort = 51820;

  private check(method: keyof AccessPointTarget, arg: string) {
    this.calls.push(`${method}:${arg}`);
    const err = this.failWith[method];
    if (err) throw err;
  }

  async openAccessPoint(spec: AccessPointSpec): Promise<AccessPointInfo> {
    this.check("openAccessPoint", spec.instanceId);
    let point = this.points.get(spec.instanceId);
    if (!point) this.points.set(spec.instanceId, (point = { spec, peers: [...spec.peers], port: this.nextPort++ }));
    return { endpoint: `192.0.2.2:${point.port}`, publicKey: publicKeyOf(spec.privateKey), resources: [`wg listener 192.0.2.2:${point.port}`] };
  }

  async setAccessPeers(instanceId: string, peers: AccessPeer[]): Promise<void> {
    this.check("setAccessPeers", `${instanceId}:${peers.length}`);
    const point = this.points.get(instanceId);
    if (!point) throw new Error(`no access point for ${instanceId}`);
    point.peers = [...peers];
  }

  async accessPointStatus(instanceId: string): Promise<AccessPointStatus> {
    this.check("accessPointStatus", instanceId);
    const point = this.points.get(instanceId);
    return {
      running: Boolean(point),
      peers: (point?.peers ?? []).map((p) => ({ publicKey: p.publicKey, lastHandshakeAt: this.handshakes.get(p.publicKey), rxBytes: 0, txBytes: 0 })),
    };
  }

  async closeAccessPoint(instanceId: string): Promise<string[]> {
    this.check("closeAccessPoint", instanceId);
    const point = this.points.get(instanceId);
    if (!point) return [];
    this.points.delete(instanceId);
    return [`closed wg listener 192.0.2.2:${point.port}`];
  }

  /** The public keys an instance's access point admits now. */
  admitted(instanceId: string): string[] {
    return (this.points.get(instanceId)?.peers ?? []).map((p) => p.publicKey);
  }
}

/**
 * An in-memory compute target for activity unit tests: it keeps what it "created" (imports,
 * images, instances, security groups) in plain sets, so a test can see a step create something
 * and its cleanup remove it again. Behaviour is steered by the public fields (the next import
 * status, the instance states to report in turn, an error to throw from a given method).
 */
export class FakeTarget implements ComputeTarget {
  readonly imports = new Map<string, string>(); // importTaskId → idempotency key
  readonly images = new Set<string>();
  readonly instances = new Set<string>();
  readonly securityGroups = new Set<string>();
  /** Every call, in order, as "method:arg". */
  readonly calls: string[] = [];
  /** Thrown by the named method instead of doing its work. */
  failWith: Partial<Record<keyof ComputeTarget, Error>> = {};
  /** What describeImport reports (state "completed" also creates the image). */
  importStatus: ImportStatus = { state: "completed", progress: 100, imageId: "img-1", snapshotIds: ["snap-1"] };
  /** The states describeInstance reports in turn (the last one repeats). */
  instanceStates: InstanceStatus[] = [{ state: "running", publicAddress: "203.0.113.7" }];
  /**
   * Set: startImport reports progress and waits until its signal aborts, then removes what it
   * wrote and rejects (a local import that is cancelled mid-copy).
   */
  importRunsUntilAborted = false;
  /** While it runs until aborted, the import reports progress (false: a stalled download, a long convert). */
  importReportsProgress = true;

  /** Private access (in memory); null: a target without it. */
  readonly access?: FakeAccess;

  constructor(
    readonly kind: TargetKind = "AWS",
    opts: { access?: boolean } = {},
  ) {
    if (opts.access !== false) this.access = new FakeAccess();
  }

  private check(method: keyof ComputeTarget, arg = ""): void {
    this.calls.push(`${method}:${arg}`);
    const err = this.failWith[method];
    if (err) throw err;
  }

  async checkAvailable(): Promise<void> {
    this.check("checkAvailable");
  }

  async startImport(idempotencyKey: string, _image: unknown, onProgress?: (percent: number, message?: string) => void, signal?: AbortSignal): Promise<{ importTaskId: string }> {
    this.check("startImport", idempotencyKey);
    const importTaskId = `import-${idempotencyKey}`;
    this.imports.set(importTaskId, idempotencyKey);
    if (this.importRunsUntilAborted) {
      await new Promise<void>((resolve, reject) => {
        if (!signal) return reject(new Error("startImport needs a signal to be cancelled"));
        const timer = setInterval(() => this.importReportsProgress && onProgress?.(10, "copying"), 5);
        signal.addEventListener("abort", () => {
          clearInterval(timer);
          this.imports.delete(importTaskId);
          reject(new Error("import aborted"));
        });
      });
    }
    onProgress?.(100, "copied");
    return { importTaskId };
  }

  async describeImport(importTaskId: string): Promise<ImportStatus> {
    this.check("describeImport", importTaskId);
    if (this.importStatus.state === "completed" && this.importStatus.imageId) this.images.add(this.importStatus.imageId);
    return this.importStatus;
  }

  async cancelImport(importTaskId: string): Promise<void> {
    this.check("cancelImport", importTaskId);
    this.imports.delete(importTaskId);
  }

  async discardImport(idempotencyKey: string, importTaskId?: string): Promise<string[]> {
    this.check("discardImport", idempotencyKey);
    const removed: string[] = [];
    for (const [id, key] of this.imports) {
      if (key === idempotencyKey || id === importTaskId) {
        this.imports.delete(id);
        removed.push(`cancelled import ${id}`);
      }
    }
    return removed;
  }

  async deleteImage(imageId: string): Promise<void> {
    this.check("deleteImage", imageId);
    this.images.delete(imageId);
  }

  /** Called as a launch is made (a test cancels the activity "while the provider answers"). */
  onLaunch?: () => void;

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    this.check("launch", req.idempotencyKey);
    const instanceId = `i-${req.idempotencyKey}`;
    this.instances.add(instanceId);
    this.onLaunch?.();
    if (this.kind === "LOCAL") return { instanceId };
    const securityGroupId = `sg-${req.idempotencyKey}`;
    this.securityGroups.add(securityGroupId);
    return { instanceId, securityGroupId };
  }

  async describeInstance(instanceId: string): Promise<InstanceStatus> {
    this.check("describeInstance", instanceId);
    const next = this.instanceStates.length > 1 ? this.instanceStates.shift() : this.instanceStates[0];
    if (!next) throw new Error("FakeTarget.instanceStates is empty");
    return next;
  }

  async startInstance(instanceId: string): Promise<void> {
    this.check("startInstance", instanceId);
  }

  async stopInstance(instanceId: string): Promise<void> {
    this.check("stopInstance", instanceId);
  }

  async terminateInstance(instanceId: string): Promise<void> {
    this.check("terminateInstance", instanceId);
    this.instances.delete(instanceId);
    // As the port says: terminating a machine also closes its access point.
    this.access?.points.delete(instanceId);
  }

  async deleteNetworkGuard(securityGroupId: string): Promise<void> {
    this.check("deleteNetworkGuard", securityGroupId);
    this.securityGroups.delete(securityGroupId);
  }

  async consoleOutput(instanceId: string): Promise<string> {
    this.check("consoleOutput", instanceId);
    return "";
  }

  async screenshot(instanceId: string): Promise<ConsoleScreenshot> {
    this.check("screenshot", instanceId);
    return { bytes: Buffer.alloc(0), contentType: "image/png" };
  }
}
