import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, type Config } from "../../src/config";
import { createS3Client } from "../../src/storage/s3";
import { objectImageSource } from "../../src/storage/object-reader";
import { LocalTarget } from "../../src/compute/local.target";
import { TargetError, type ComposedImage, type ImageSource } from "../../src/compute/target";
import { makeBootableImage } from "../helpers/boot-image";
import { waitFor } from "../helpers/wait";

/**
 * The local QEMU target end to end: a hand-made boot sector in the real imports bucket, imported
 * with qemu-img, booted with real QEMU (KVM when usable, else TCG), driven over QMP.
 */

const MARKER = "RECLO-BOOT-OK";
const IMAGE_SIZE = 9 * 1024 * 1024 + 64 * 1024;

const config = loadConfig({ ...process.env, NODE_ENV: "test" });
const runId = `${process.pid}-${randomBytes(4).toString("hex")}`;
const recoveryId = `lt-${runId}`;
const isolatedRecoveryId = `lt-iso-${runId}`;
const instanceId = `vm-${recoveryId}`;
const isolatedInstanceId = `vm-${isolatedRecoveryId}`;

let dir: string;
let local: Config["local"];
let s3: S3Client;
let imageSource: ImageSource;
let target: LocalTarget;
let image: ComposedImage;
let imageId: string;

function pgrep(pattern: string): number[] {
  try {
    return execFileSync("pgrep", ["-f", pattern], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

function pidOf(id: string): number {
  return (JSON.parse(fs.readFileSync(path.join(dir, "instances", id, "meta.json"), "utf8")) as { pid: number }).pid;
}

async function waitForMarker(t: LocalTarget, id: string): Promise<number> {
  const started = Date.now();
  await waitFor(`"${MARKER}" on the serial console of ${id}`, async () => (await t.consoleOutput(id)).includes(MARKER), 60_000);
  return Date.now() - started;
}

const timings: Record<string, number> = {};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-lt-"));
  local = { dir, qemuSystem: "qemu-system-x86_64", qemuImg: "qemu-img", accel: config.local.accel, memoryMb: 64, cpus: 1, stopTimeoutMs: 1500, runAs: config.local.runAs, importRateLimit: 0 };
  s3 = createS3Client(config.s3);
  imageSource = objectImageSource(s3);
  target = new LocalTarget({ local, imageSource });
  const raw = makeBootableImage(IMAGE_SIZE, `${MARKER}\r\n`);
  image = { bucket: config.s3.buckets.imports, key: `test/local-target/${runId}/disk.raw`, sizeBytes: raw.length };
  await s3.send(new PutObjectCommand({ Bucket: image.bucket, Key: image.key, Body: raw, ContentLength: raw.length }));
});

afterAll(async () => {
  for (const id of [instanceId, isolatedInstanceId]) await target?.terminateInstance(id).catch(() => {});
  await s3?.send(new DeleteObjectCommand({ Bucket: image.bucket, Key: image.key })).catch(() => {});
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  s3?.destroy();
  console.log(`local target timings (accel ${target?.resolveAccel()}): ${JSON.stringify(timings)}`);
});

describe("LocalTarget (real QEMU)", () => {
  it("checks that QEMU is installed", async () => {
    await target.checkAvailable();
    const bogus = new LocalTarget({ local: { ...local, qemuSystem: path.join(dir, "no-such-qemu") }, imageSource });
    const err = await bogus.checkAvailable().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TargetError);
    expect((err as TargetError).retryable).toBe(false);
    expect((err as TargetError).message).toContain("apt-get install qemu-system-x86 qemu-utils");

    // QEMU never runs as root: as root, a -runas user is required and must exist.
    if (process.getuid?.() === 0) {
      const nobody = new LocalTarget({ local: { ...local, runAs: "reclo-no-such-user" }, imageSource });
      await expect(nobody.checkAvailable()).rejects.toMatchObject({ code: "QEMU_RUNAS_UNAVAILABLE", retryable: false });
      const unset = new LocalTarget({ local: { ...local, runAs: undefined }, imageSource });
      await expect(unset.checkAvailable()).rejects.toMatchObject({ code: "QEMU_RUNAS_REQUIRED", retryable: false });
    }
  });

  it("imports the composed raw image from S3 into a qcow2 base image, with monotonic progress", async () => {
    const progress: number[] = [];
    const started = Date.now();
    const { importTaskId } = await target.startImport(recoveryId, image, (p) => progress.push(p));
    timings.importMs = Date.now() - started;
    imageId = importTaskId;
    expect(imageId).toBe(`img-${recoveryId}`);
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.at(-1)).toBe(100);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThanOrEqual(progress[i - 1]!);
    expect(progress.some((p) => p > 0 && p < 50)).toBe(true);
    expect(progress.some((p) => p >= 50 && p < 100)).toBe(true);

    const file = path.join(dir, "images", `${imageId}.qcow2`);
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", file], { encoding: "utf8" })) as { format: string; "virtual-size": number };
    expect(info.format).toBe("qcow2");
    expect(info["virtual-size"]).toBe(IMAGE_SIZE);
    expect(fs.readdirSync(path.join(dir, "tmp"))).toEqual([]);
    expect(fs.existsSync(`${file}.part`)).toBe(false);

    expect(await target.describeImport(imageId)).toEqual({ state: "completed", progress: 100, imageId });
    expect(await target.describeImport("img-nope")).toMatchObject({ state: "failed", message: "import img-nope not found" });

    // Idempotent: a retry of the activity finds the image and reports 100 at once.
    const again: number[] = [];
    expect(await target.startImport(recoveryId, image, (p) => again.push(p))).toEqual({ importTaskId: imageId });
    expect(again).toEqual([100]);
    await target.cancelImport("img-nothing-running"); // no-op
  });

  it("LOCAL_IMPORT_RATE_LIMIT paces the download; aborting the caller's signal stops it and removes its files", async () => {
    const slow = new LocalTarget({ local: { ...local, importRateLimit: 4 * 1024 * 1024 }, imageSource });
    const abortedId = `${recoveryId}-abort`;
    const ac = new AbortController();
    const seen: number[] = [];
    const run = slow.startImport(abortedId, image, (p) => {
      seen.push(p);
      if (p >= 10) ac.abort();
    }, ac.signal);
    const err = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "IMPORT_CANCELLED", retryable: false });
    // Paced: several progress reports before a tenth of the image was read.
    expect(seen.filter((p) => p < 10).length).toBeGreaterThan(3);
    expect(fs.readdirSync(path.join(dir, "tmp")).filter((f) => f.includes(abortedId))).toEqual([]);
    expect(fs.readdirSync(path.join(dir, "images")).filter((f) => f.includes(abortedId))).toEqual([]);
    expect(await slow.describeImport(`img-${abortedId}`)).toMatchObject({ state: "failed" });
    // An already-aborted signal starts nothing.
    await expect(slow.startImport(abortedId, image, undefined, ac.signal)).rejects.toMatchObject({ code: "IMPORT_CANCELLED" });
  });

  it("discardImport removes a finished import's image by the recovery id alone (a cancel that raced the end of the import)", async () => {
    // The flaky "recover --cancel … nothing is left": the import finished while the workflow was
    // being cancelled, so the workflow never learned the image id and cleanup left the qcow2 behind.
    const racedId = `${recoveryId}-raced`;
    await target.startImport(racedId, image);
    const file = path.join(dir, "images", `img-${racedId}.qcow2`);
    expect(fs.existsSync(file)).toBe(true);
    expect(await target.discardImport(racedId)).toEqual([`deleted image img-${racedId}`]);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readdirSync(path.join(dir, "tmp")).filter((f) => f.includes(racedId))).toEqual([]);
    // Nothing there (a cancel before the import began): nothing to report.
    expect(await target.discardImport(`${racedId}-never`)).toEqual([]);
  });

  it("discardImport stops an import that is still running and leaves no file", async () => {
    const slow = new LocalTarget({ local: { ...local, importRateLimit: 2 * 1024 * 1024 }, imageSource });
    const runningId = `${recoveryId}-running`;
    let reachedFive!: () => void;
    const atFive = new Promise<void>((r) => (reachedFive = r));
    const run = slow.startImport(runningId, image, (p) => {
      if (p >= 5) reachedFive();
    });
    const outcome = run.then(
      () => "finished",
      (e: unknown) => (e as TargetError).code,
    );
    await atFive;
    expect(await slow.discardImport(runningId)).toEqual([`cancelled import img-${runningId}`]);
    expect(await outcome).toBe("IMPORT_CANCELLED");
    expect(fs.readdirSync(path.join(dir, "tmp")).filter((f) => f.includes(runningId))).toEqual([]);
    expect(fs.readdirSync(path.join(dir, "images")).filter((f) => f.includes(runningId))).toEqual([]);
  });

  it("launches with loopback port forwards, boots to the marker and takes a PNG screenshot", async () => {
    let started = Date.now();
    const res = await target.launch({ idempotencyKey: recoveryId, userId: "u1", imageId, name: "pc-01-recovered", allowedCidr: "0.0.0.0/0" });
    timings.launchMs = Date.now() - started;
    expect(res.instanceId).toBe(instanceId);
    // The launch time is when QEMU was started, before the launch's bookkeeping ended.
    expect(res.launchedAtMs).toBeGreaterThanOrEqual(started);
    expect(res.launchedAtMs).toBeLessThanOrEqual(started + timings.launchMs);
    const status = await target.describeInstance(instanceId);
    expect(status.state).toBe("running");
    expect(status.publicAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(status).toMatchObject({ privateAddress: "10.0.2.15", zone: "local" });
    const pid = pidOf(instanceId);
    const cmd = cmdline(pid);
    expect(cmd).toContain(`hostfwd=tcp:${status.publicAddress}-:3389`);
    expect(cmd).toMatch(/hostfwd=tcp:127\.0\.0\.1:\d+-:22/);
    // One network policy: restricted, forwards on loopback only; seccomp on; QMP private to us.
    expect(cmd).toContain("restrict=on");
    expect(cmd.match(/hostfwd=tcp:[^,\s]*/g)!.every((f) => f.startsWith("hostfwd=tcp:127.0.0.1:"))).toBe(true);
    expect(cmd).toMatch(/-sandbox on/);
    const qmp = fs.statSync(path.join(dir, "instances", instanceId, "qmp.sock"));
    expect(qmp.mode & 0o777).toBe(0o600);
    expect(qmp.uid).toBe(process.getuid!());
    expect(fs.statSync(path.join(dir, "instances", instanceId)).mode & 0o777).toBe(0o700);
    if (config.local.runAs) {
      expect(cmd).toContain(`-runas ${config.local.runAs}`);
      const uid = Number(execFileSync("id", ["-u", config.local.runAs], { encoding: "utf8" }).trim());
      expect(fs.readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, "m"));
    }
    timings.bootToMarkerMs = await waitForMarker(target, instanceId);

    // Idempotent launch: the same VM.
    expect(await target.launch({ idempotencyKey: recoveryId, userId: "u1", imageId, name: "pc-01-recovered", allowedCidr: "0.0.0.0/0" })).toEqual({ instanceId, launchedAtMs: res.launchedAtMs });
    expect(pidOf(instanceId)).toBe(pid);

    started = Date.now();
    const shot = await target.screenshot(instanceId);
    timings.screenshotMs = Date.now() - started;
    expect(shot.contentType).toBe("image/png");
    const png = shot.bytes;
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    expect(width).toBeGreaterThan(0);
    expect(height).toBeGreaterThan(0);
    timings.screenshotWidth = width;
    timings.screenshotHeight = height;
  });

  it("stops (keeping the disk) and starts again on the same overlay", async () => {
    const dirOf = path.join(dir, "instances", instanceId);
    const oldPid = pidOf(instanceId);
    let started = Date.now();
    await target.stopInstance(instanceId);
    timings.stopMs = Date.now() - started;
    expect((await target.describeInstance(instanceId)).state).toBe("stopped");
    expect(pgrep(dirOf)).toEqual([]);
    expect(fs.existsSync(path.join(dirOf, "overlay.qcow2"))).toBe(true);
    await target.stopInstance(instanceId); // idempotent
    const err = await target.screenshot(instanceId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetError);
    expect((err as TargetError).retryable).toBe(false);
    expect((err as TargetError).message).toContain("is not running");

    // The old RDP port got taken meanwhile: start picks a new one and records it.
    const oldAddress = (await target.describeInstance(instanceId)).publicAddress!;
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(Number(oldAddress.split(":")[1]), "127.0.0.1", resolve));
    try {
      started = Date.now();
      await target.startInstance(instanceId);
      timings.startMs = Date.now() - started;
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    const restarted = await target.describeInstance(instanceId);
    expect(restarted.state).toBe("running");
    expect(restarted.publicAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(restarted.publicAddress).not.toBe(oldAddress);
    expect(pidOf(instanceId)).not.toBe(oldPid);
    timings.restartToMarkerMs = await waitForMarker(target, instanceId);
    // Each start truncates serial.log, so this marker is from the new boot.
    expect((await target.consoleOutput(instanceId)).split(MARKER).length - 1).toBe(1);
  });

  it("re-attaches from a new LocalTarget (a restarted worker), and reports a killed VM as lost", async () => {
    const fresh = new LocalTarget({ local, imageSource });
    expect((await fresh.describeInstance(instanceId)).state).toBe("running");
    expect(await fresh.listInstances()).toEqual([expect.objectContaining({ instanceId, state: "running" })]);

    process.kill(pidOf(instanceId), "SIGKILL");
    await waitFor("the killed VM to be lost", async () => (await fresh.describeInstance(instanceId)).state === "lost", 10_000);

    // Launch again (same recovery): back on its own disk.
    await fresh.launch({ idempotencyKey: recoveryId, userId: "u1", imageId, name: "pc-01-recovered", allowedCidr: "0.0.0.0/0" });
    expect((await fresh.describeInstance(instanceId)).state).toBe("running");
    await waitForMarker(fresh, instanceId);
  });

  it("starting again waits for a previous QEMU that still holds the disk (a killed one exits after /proc forgets its command line)", async () => {
    await target.stopInstance(instanceId);
    const overlay = path.join(dir, "instances", instanceId, "overlay.qcow2");
    // Stopped means ended, its files closed: the disk is free at once.
    execFileSync("qemu-img", ["info", overlay], { stdio: "pipe" });
    // Another QEMU, paused before its first instruction, holding the overlay's write lock: an exiting
    // QEMU as the start sees it, holding the disk while no longer listed as a QEMU of this machine
    // (an exiting process's command line is gone; here argv[0] does not name qemu), so the start
    // can neither find nor kill it, only wait for the lock.
    const holder = spawn("qemu-system-x86_64", ["-S", "-display", "none", "-nodefaults", "-machine", "q35,accel=tcg", "-drive", `file=${overlay},format=qcow2,if=ide`], { stdio: "ignore", argv0: "disk-holder" });
    try {
      await waitFor("the holder to lock the disk", () => {
        try {
          execFileSync("qemu-img", ["info", overlay], { stdio: "pipe" });
          return false;
        } catch (e) {
          return /lock/i.test(String((e as { stderr?: Buffer }).stderr ?? ""));
        }
      }, 10_000, 50);
      // The lock is the holder's (it is still there; it would have exited had it failed to take it).
      expect(holder.exitCode === null && holder.signalCode === null).toBe(true);
      const started = Date.now();
      setTimeout(() => holder.kill("SIGKILL"), 1500).unref();
      await target.startInstance(instanceId);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
      expect(holder.exitCode !== null || holder.signalCode !== null).toBe(true);
    } finally {
      holder.kill("SIGKILL");
    }
    expect((await target.describeInstance(instanceId)).state).toBe("running");
    await waitForMarker(target, instanceId);
  });

  it("terminates without leaving a process or a file behind", async () => {
    const dirOf = path.join(dir, "instances", instanceId);
    const started = Date.now();
    await target.terminateInstance(instanceId);
    timings.terminateMs = Date.now() - started;
    expect(pgrep(dirOf)).toEqual([]);
    expect(fs.existsSync(dirOf)).toBe(false);
    expect((await target.describeInstance(instanceId)).state).toBe("terminated");
    expect(await target.consoleOutput(instanceId)).toBe("");
    await target.terminateInstance(instanceId); // no-op
  });

  it("refuses to start QEMU without its seccomp sandbox (no retry without it)", async () => {
    const calls = path.join(dir, "fake-qemu.calls");
    const fake = path.join(dir, "fake-qemu");
    fs.writeFileSync(
      fake,
      `#!/bin/sh\necho "$*" >>'${calls}'\ncase "$*" in *-sandbox*) echo "qemu-system-x86_64: -sandbox on,obsolete=deny: seccomp support is disabled" >&2; exit 1;; esac\nexit 0\n`,
      { mode: 0o755 },
    );
    const noSeccomp = new LocalTarget({ local: { ...local, qemuSystem: fake }, imageSource });
    const rid = `${recoveryId}-nosandbox`;
    try {
      const err = await noSeccomp.launch({ idempotencyKey: rid, userId: "u1", imageId, name: "nosandbox", allowedCidr: "0.0.0.0/0" }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TargetError);
      expect(err).toMatchObject({ code: "QEMU_SANDBOX_UNAVAILABLE", retryable: false });
      const invocations = fs.readFileSync(calls, "utf8").trim().split("\n");
      expect(invocations).toHaveLength(1);
      expect(invocations[0]).toContain("-sandbox on");
    } finally {
      await noSeccomp.terminateInstance(`vm-${rid}`);
    }
  });

  it("refuses outbound internet and bad port lists on the local target", async () => {
    await expect(target.launch({ idempotencyKey: `${recoveryId}-inet`, userId: "u1", imageId, name: "inet", allowedCidr: "0.0.0.0/0", allowInternet: true })).rejects.toMatchObject({
      code: "INTERNET_UNSUPPORTED",
      retryable: false,
    });
    await expect(target.launch({ idempotencyKey: `${recoveryId}-ports`, userId: "u1", imageId, name: "ports", allowedCidr: "0.0.0.0/0", ports: [22, 22] })).rejects.toMatchObject({
      code: "INVALID_PORTS",
    });
    expect(fs.readdirSync(path.join(dir, "instances")).filter((d) => d.includes("-inet") || d.includes("-ports"))).toEqual([]);
  });

  it("launches isolated (not offered to the user, loopback forwards only), survives deleteImage, then terminates", async () => {
    await target.launch({ idempotencyKey: isolatedRecoveryId, userId: "u1", imageId, name: "verify", allowedCidr: "0.0.0.0/0", isolated: true });
    const cmd = cmdline(pidOf(isolatedInstanceId));
    expect(cmd).toContain("restrict=on");
    expect(cmd).toMatch(/-sandbox on/);
    const forwards = await target.forwards(isolatedInstanceId);
    expect(forwards.map((f) => f.guestPort)).toEqual([22, 3389]);
    for (const f of forwards) expect(cmd).toContain(`hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`);
    const status = await target.describeInstance(isolatedInstanceId);
    expect(status.state).toBe("running");
    expect(status.publicAddress).toBeUndefined();

    await target.deleteImage(imageId);
    expect(fs.existsSync(path.join(dir, "images", `${imageId}.qcow2`))).toBe(false);
    expect((await target.describeImport(imageId)).state).toBe("failed");
    await target.deleteImage(imageId); // no-op
    // The VM keeps its own link to the base image.
    await waitForMarker(target, isolatedInstanceId);
    expect((await target.describeInstance(isolatedInstanceId)).state).toBe("running");

    const dirOf = path.join(dir, "instances", isolatedInstanceId);
    await target.terminateInstance(isolatedInstanceId);
    expect(pgrep(dirOf)).toEqual([]);
    expect(fs.existsSync(dirOf)).toBe(false);
    expect(fs.readdirSync(path.join(dir, "instances"))).toEqual([]);
  });
});
