import { createHash } from "node:crypto";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { TargetError } from "../target";
import type { GuestForward } from "../guest-network";
import type { RunAsUser } from "./host";

/**
 * Where the local target keeps everything, under `local.dir`:
 *
 *   images/<imageId>.qcow2            pristine base image (imageId = img-<key>)
 *   instances/<instanceId>/           one VM (instanceId = vm-<key>), mode 0700
 *     base.qcow2                      hard link to the base image, so deleteImage never breaks a VM
 *     overlay.qcow2                   the VM's disk (backing file: base.qcow2)
 *     meta.json qemu.pid qmp.sock serial.log firmware.log
 *     access.json wg.pid wg.sock wg.log   the machine's WireGuard access point (access-points.ts)
 *     stopped | stopping              markers written by stopInstance
 *   terminated/<instanceId>           tombstone written by terminateInstance
 *   tmp/<key>.raw                     download in progress
 *   tmp/<key>.raw.ckpt                how much of it is on disk for good (a retry resumes there)
 *
 * (<key> is the caller's idempotency key: a recovery's or a verification's id.) All state is derived
 * from these files, so a new LocalTarget in a new process re-attaches to everything.
 */

export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SCREENS_DIR = "reclo-screens";

export interface LocalInstanceMeta {
  instanceId: string;
  name: string;
  /** The launch's idempotency key (instanceId = vm-<key>). */
  idempotencyKey: string;
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

export function checkId(id: string, what: string): string {
  if (!SAFE_ID.test(id)) throw new TargetError(`invalid ${what} "${id}"`, false, "INVALID_ID");
  return id;
}

export class LocalLayout {
  constructor(readonly root: string) {}

  get imagesDir(): string {
    return path.join(this.root, "images");
  }
  get instancesDir(): string {
    return path.join(this.root, "instances");
  }
  get tmpDir(): string {
    return path.join(this.root, "tmp");
  }
  get tombstoneDir(): string {
    return path.join(this.root, "terminated");
  }
  imagePath(imageId: string): string {
    return path.join(this.imagesDir, `${checkId(imageId, "image id")}.qcow2`);
  }
  instanceDir(instanceId: string): string {
    return path.join(this.instancesDir, checkId(instanceId, "instance id"));
  }
  tombstone(instanceId: string): string {
    return path.join(this.tombstoneDir, instanceId);
  }
  /** The raw download of an import in progress. */
  download(key: string): string {
    return path.join(this.tmpDir, `${key}.raw`);
  }
  /** <dir>/qmp.sock, or a hashed name in the OS temp dir when that path is too long for a unix socket (108 bytes). */
  qmpSocket(dir: string): string {
    const p = path.join(dir, "qmp.sock");
    if (Buffer.byteLength(p) <= 100) return p;
    return path.join(os.tmpdir(), `reclo-qmp-${createHash("sha256").update(dir).digest("hex").slice(0, 16)}.sock`);
  }
  /** <dir>/wg.sock, the control socket of the machine's access point (reclo-wg), hashed into the OS temp dir when too long. */
  wgSocket(dir: string): string {
    const p = path.join(dir, "wg.sock");
    if (Buffer.byteLength(p) <= 100) return p;
    return path.join(os.tmpdir(), `reclo-wg-${createHash("sha256").update(dir).digest("hex").slice(0, 16)}.sock`);
  }
  /** Where QEMU may write screendumps: the instance directory, or a directory of the -runas user. */
  screenDir(dir: string, runAs: RunAsUser | undefined): string {
    if (!runAs) return dir;
    return path.join(os.tmpdir(), SCREENS_DIR, createHash("sha256").update(dir).digest("hex").slice(0, 24));
  }

  // ---------------------------------------------------------------- meta.json

  async readMeta(instanceId: string): Promise<LocalInstanceMeta | undefined> {
    let meta: LocalInstanceMeta & { recoveryId?: string };
    try {
      meta = JSON.parse(await fsp.readFile(path.join(this.instanceDir(instanceId), "meta.json"), "utf8")) as LocalInstanceMeta & { recoveryId?: string };
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
    // Written before the key had its name, as recoveryId.
    if (meta.idempotencyKey === undefined && meta.recoveryId !== undefined) {
      meta.idempotencyKey = meta.recoveryId;
      delete meta.recoveryId;
    }
    return meta;
  }

  async requireMeta(instanceId: string): Promise<LocalInstanceMeta> {
    const meta = await this.readMeta(instanceId);
    if (!meta) throw new TargetError(`instance ${instanceId} not found on the local target`, false, "INSTANCE_NOT_FOUND");
    return meta;
  }

  async writeMeta(meta: LocalInstanceMeta): Promise<void> {
    const file = path.join(this.instanceDir(meta.instanceId), "meta.json");
    await fsp.writeFile(`${file}.tmp`, JSON.stringify(meta, null, 2) + "\n", { mode: 0o600 });
    await fsp.rename(`${file}.tmp`, file);
  }
}
