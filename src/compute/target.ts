import type { Readable } from "node:stream";

/**
 * The compute/target port: what a recovery needs from where the machine will run. The same
 * workflow drives AWS EC2 (aws.target.ts) and the local QEMU/KVM host (local.target.ts).
 *
 * Every method is idempotent for the same arguments (EC2 ClientToken, deterministic local names),
 * so a Temporal activity retry or a worker restart never duplicates an import or an instance.
 * Methods throw TargetError with `retryable: false` for errors that retrying cannot fix (bad input,
 * missing permissions, a deleted import); anything else is treated as transient.
 */

export type TargetKind = "AWS" | "LOCAL";

/** The composed raw disk image in the imports bucket. */
export interface ComposedImage {
  bucket: string;
  key: string;
  sizeBytes: number;
  /** Bytes of non-zero chunks (what a sparse copy of the image occupies); unknown = sizeBytes. */
  dataBytes?: number;
}

/**
 * Where a target that copies the composed image itself (local) reads it from: the imports bucket,
 * behind src/storage (the only place that talks to the object store).
 */
export interface ImageSource {
  /**
   * Opens the image for reading from its start, or from `from.offset` (a resumed download; with
   * `from.etag`, only while the image is still the one read before); `signal` aborts the request
   * and the stream. Rejects with ImageUnreadableError when the image does not exist or may not be
   * read (retrying cannot help), ImageChangedError when it is no longer what `from` describes (start
   * again from zero); any other rejection is transient.
   */
  open(image: Pick<ComposedImage, "bucket" | "key">, signal?: AbortSignal, from?: { offset: number; etag?: string }): Promise<ImageStream>;
}

export interface ImageStream {
  body: Readable;
  /** The length of this stream as the source announced it, when it did: a shorter stream is a failed download. */
  sizeBytes?: number;
  /** The whole image's length (a ranged read carries only its tail). */
  totalBytes?: number;
  /** The version of the image read (a resumed read asks for the same). */
  etag?: string;
}

/** The image is no longer the one a resumed download began with (or is shorter): start from zero. */
export class ImageChangedError extends Error {
  override name = "ImageChangedError";
}

/** The composed image is missing or may not be read (`reason`: the store's word for it, e.g. NoSuchKey). */
export class ImageUnreadableError extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
    this.name = "ImageUnreadableError";
  }
}

export interface ImportStatus {
  state: "active" | "completed" | "failed";
  /** 0–100. */
  progress: number;
  message?: string;
  /** Set when completed: AMI id, or the local base image name. */
  imageId?: string;
  /** EBS snapshots behind the image (AWS), to delete on cleanup. */
  snapshotIds?: string[];
}

export interface LaunchRequest {
  /**
   * Makes the launch idempotent: the same key gives the same machine (the AWS ClientToken, the
   * local instance vm-<key>). The caller's own id: a recovery's, or a verification's target id.
   */
  idempotencyKey: string;
  userId: string;
  imageId: string;
  /** Name shown to the user (e.g. "<source>-recovered"). */
  name: string;
  /** Kept for the API's check; opens nothing on either target (issue 15: the access point is the only way in). */
  allowedCidr: string;
  /**
   * Boot verification: the machine is not offered to the user (no public address). Its declared
   * ports are still forwarded to 127.0.0.1 locally, so the product itself can check its services.
   */
  isolated?: boolean;
  /** TCP ports the machine serves; default [22, 3389] (SSH, RDP). The only way into the guest. */
  ports?: number[];
  /** Outbound internet for the guest (default off). AWS: the security group keeps egress; LOCAL refuses it. */
  allowInternet?: boolean;
}

export interface LaunchResult {
  instanceId: string;
  /** Per-recovery security group (AWS), to delete on cleanup. */
  securityGroupId?: string;
  /**
   * When the provider launched it (AWS: the instance's LaunchTime, the first launch's on an
   * idempotent retry). Callers keep it (the workflow's history) and pass it back to describeInstance.
   */
  launchedAtMs?: number;
}

export interface DescribeOptions {
  /**
   * When the machine was launched, as the launch reported it. A provider whose reads are eventually
   * consistent (EC2) reports a machine it cannot see yet as "pending" rather than "lost" for a grace
   * period after this time — on any worker process, not only the one that launched it.
   */
  launchedAtMs?: number;
}

export type InstanceProviderState = "pending" | "running" | "stopping" | "stopped" | "terminated" | "lost";

export interface InstanceStatus {
  state: InstanceProviderState;
  publicAddress?: string;
  privateAddress?: string;
  zone?: string;
}

export type StatusCheckState = "ok" | "impaired" | "initializing" | "insufficient-data" | "not-applicable";

export interface StatusChecks {
  system: StatusCheckState;
  instance: StatusCheckState;
  /** The failed checks by name (e.g. "instance reachability: failed"), when impaired. */
  details?: string[];
}

/** The formats targets give their screenshots in (local QEMU: PNG; EC2 GetConsoleScreenshot: JPEG). */
export type ScreenshotContentType = "image/png" | "image/jpeg";

/** File name extension for a stored screenshot of this type. */
export const SCREENSHOT_EXTENSION: Readonly<Record<ScreenshotContentType, string>> = { "image/png": "png", "image/jpeg": "jpg" };

/** A picture of a machine's console, in the format the provider took it. */
export interface ConsoleScreenshot {
  bytes: Buffer;
  contentType: ScreenshotContentType;
}

/**
 * Private access (issue 15): one WireGuard access point per recovered machine, the only way its
 * users reach it. Each user device is a peer with its own key pair and tunnel address; the access
 * point admits TCP to the machine's declared ports on `tunnelAddress` and nothing else (no routing
 * to the host, the provider network or other machines). Keys are base64 of 32 raw bytes (wg format).
 */
export interface AccessPeer {
  publicKey: string;
  /** The peer's own tunnel address (one address, e.g. 100.96.3.2); the access point admits nothing else from this key. */
  address: string;
}

export interface AccessPointSpec {
  /** Makes open idempotent (AWS ClientToken, local names): the recovery's id. */
  idempotencyKey: string;
  instanceId: string;
  /** The access point's private key, decrypted for this call only (stored encrypted at rest). */
  privateKey: string;
  /** Where users reach the machine inside the tunnel, e.g. 100.96.3.1. */
  tunnelAddress: string;
  /** The tunnel's subnet, e.g. 100.96.3.0/24 (peers' addresses are in it). */
  tunnelSubnet: string;
  /** Guest TCP ports reachable through the tunnel: the machine's declared ports. */
  ports: number[];
  /** Peers admitted from the start (an access point opened again after a restart). */
  peers: AccessPeer[];
}

export interface AccessPointInfo {
  /** host:port WireGuard clients connect to (UDP). */
  endpoint: string;
  /** The access point's public key (derived from the private one). */
  publicKey: string;
  /** What the provider created for it (AWS: gateway instance, security group), for the timeline. */
  resources: string[];
}

export interface AccessPeerStatus {
  publicKey: string;
  lastHandshakeAt?: Date;
  rxBytes: number;
  txBytes: number;
}

export interface AccessPointStatus {
  running: boolean;
  peers: AccessPeerStatus[];
}

/** A target that offers private access implements all four; terminateInstance also closes it. */
export interface AccessPointTarget {
  /** Opens (or finds, for the same idempotencyKey) the machine's access point. */
  openAccessPoint(spec: AccessPointSpec): Promise<AccessPointInfo>;
  /** Replaces the admitted peers with exactly `peers` (idempotent; a revoked key stops working within seconds). */
  setAccessPeers(instanceId: string, peers: AccessPeer[]): Promise<void>;
  accessPointStatus(instanceId: string): Promise<AccessPointStatus>;
  /** Removes the access point and everything it created (no-op when gone); returns what it removed. */
  closeAccessPoint(instanceId: string): Promise<string[]>;
}

export interface ComputeTarget {
  readonly kind: TargetKind;
  /** Throws TargetError(retryable:false) naming what to install/configure when the target cannot work here. */
  checkAvailable(): Promise<void>;
  /**
   * Starts importing the composed image; returns the provider's import task id. Idempotent per
   * idempotencyKey (as for launch). A target that imports within this call (local) stops when `signal` aborts, and has
   * removed what it wrote by the time it rejects.
   */
  startImport(idempotencyKey: string, image: ComposedImage, onProgress?: (percent: number, message?: string) => void, signal?: AbortSignal): Promise<{ importTaskId: string }>;
  describeImport(importTaskId: string): Promise<ImportStatus>;
  cancelImport(importTaskId: string): Promise<void>;
  /**
   * Removes whatever an import under this idempotency key created, whether or not its task id or image id
   * was recorded: a cancel or failure can land while startImport is still running, or after the
   * import finished but before the workflow learned the image id. Cancels an active import and
   * deletes a finished one's image (and snapshots). Returns what it removed, for the timeline.
   */
  discardImport(idempotencyKey: string, importTaskId?: string): Promise<string[]>;
  /**
   * Removes the machine a launch under this idempotency key created, whether or not its instance id
   * was recorded (a cancel can cut a launch short), where the target can find it by the key alone.
   * Returns what it removed, for the timeline.
   */
  discardLaunch?(idempotencyKey: string): Promise<string[]>;
  /** Removes an imported image and its snapshots (no-op when already gone). */
  deleteImage(imageId: string, snapshotIds?: string[]): Promise<void>;
  launch(req: LaunchRequest): Promise<LaunchResult>;
  describeInstance(instanceId: string, opts?: DescribeOptions): Promise<InstanceStatus>;
  /**
   * Many machines' states in few calls (AWS: DescribeInstances in pages), for the scheduled state
   * sync. Every id asked for is in the answer; one the provider does not know is "lost".
   */
  describeInstances?(instanceIds: string[]): Promise<Map<string, InstanceStatus>>;
  /**
   * The provider's own reachability checks of a running instance (AWS: DescribeInstanceStatus,
   * system = the host and its network, instance = the guest OS answers), when the target has them.
   */
  statusChecks?(instanceId: string): Promise<StatusChecks>;
  startInstance(instanceId: string): Promise<void>;
  /** Graceful stop (ACPI / StopInstances), forced after a timeout. */
  stopInstance(instanceId: string): Promise<void>;
  /** Terminates and removes everything the instance owns (no-op when already gone). */
  terminateInstance(instanceId: string): Promise<void>;
  /** Deletes a per-recovery security group (no-op locally or when gone). */
  deleteNetworkGuard(securityGroupId: string): Promise<void>;
  /** Tail of the serial console (UTF-8). */
  consoleOutput(instanceId: string): Promise<string>;
  /** A screenshot of the console, in the provider's format (`contentType` says which). */
  screenshot(instanceId: string): Promise<ConsoleScreenshot>;
  /** Tail of the firmware's debug log (local: SeaBIOS through isa-debugcon), when the target has one. */
  firmwareLog?(instanceId: string): Promise<string>;
  /** Where guest TCP `ports` can be reached from this host (only the forwarded ones), when the target forwards ports. */
  serviceEndpoints?(instanceId: string, ports: number[]): Promise<{ guestPort: number; host: string; port: number }[]>;
  /** Private access over WireGuard (both targets implement it). */
  readonly access?: AccessPointTarget;
}

export class TargetError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code?: string,
  ) {
    super(message);
    this.name = "TargetError";
  }
}
