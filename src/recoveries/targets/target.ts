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
  recoveryId: string;
  userId: string;
  imageId: string;
  /** Name shown to the user (e.g. "<source>-recovered"). */
  name: string;
  /** CIDR allowed to reach RDP/SSH (AWS security group); ignored locally. */
  allowedCidr: string;
  /** Local target: no network out of the guest and no SSH/RDP forwards (boot verification runs isolated). */
  isolated?: boolean;
  /**
   * Local target: guest TCP ports to forward from loopback even when isolated, so their services
   * can be probed (meta `forwards`). Non-isolated machines always forward 22 and 3389.
   */
  ports?: number[];
}

export interface LaunchResult {
  instanceId: string;
  /** Per-recovery security group (AWS), to delete on cleanup. */
  securityGroupId?: string;
}

export type InstanceProviderState = "pending" | "running" | "stopping" | "stopped" | "terminated" | "lost";

export interface InstanceStatus {
  state: InstanceProviderState;
  publicAddress?: string;
  privateAddress?: string;
  zone?: string;
}

export interface ComputeTarget {
  readonly kind: TargetKind;
  /** Throws TargetError(retryable:false) naming what to install/configure when the target cannot work here. */
  checkAvailable(): Promise<void>;
  /**
   * Starts importing the composed image; returns the provider's import task id. Idempotent per
   * recoveryId. A target that imports within this call (local) stops when `signal` aborts, and has
   * removed what it wrote by the time it rejects.
   */
  startImport(recoveryId: string, image: ComposedImage, onProgress?: (percent: number, message?: string) => void, signal?: AbortSignal): Promise<{ importTaskId: string }>;
  describeImport(importTaskId: string): Promise<ImportStatus>;
  cancelImport(importTaskId: string): Promise<void>;
  /**
   * Removes whatever an import for this recovery created, whether or not its task id or image id
   * was recorded: a cancel or failure can land while startImport is still running, or after the
   * import finished but before the workflow learned the image id. Cancels an active import and
   * deletes a finished one's image (and snapshots). Returns what it removed, for the timeline.
   */
  discardImport(recoveryId: string, importTaskId?: string): Promise<string[]>;
  /** Removes an imported image and its snapshots (no-op when already gone). */
  deleteImage(imageId: string, snapshotIds?: string[]): Promise<void>;
  launch(req: LaunchRequest): Promise<LaunchResult>;
  describeInstance(instanceId: string): Promise<InstanceStatus>;
  startInstance(instanceId: string): Promise<void>;
  /** Graceful stop (ACPI / StopInstances), forced after a timeout. */
  stopInstance(instanceId: string): Promise<void>;
  /** Terminates and removes everything the instance owns (no-op when already gone). */
  terminateInstance(instanceId: string): Promise<void>;
  /** Deletes a per-recovery security group (no-op locally or when gone). */
  deleteNetworkGuard(securityGroupId: string): Promise<void>;
  /** Tail of the serial console (UTF-8). */
  consoleOutput(instanceId: string): Promise<string>;
  /** PNG screenshot of the console. */
  screenshot(instanceId: string): Promise<Buffer>;
  /** Tail of the firmware's debug log (local: SeaBIOS through isa-debugcon), when the target has one. */
  firmwareLog?(instanceId: string): Promise<string>;
  /** Where guest TCP `ports` can be reached from this host (only the forwarded ones), when the target forwards ports. */
  serviceEndpoints?(instanceId: string, ports: number[]): Promise<{ guestPort: number; host: string; port: number }[]>;
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
