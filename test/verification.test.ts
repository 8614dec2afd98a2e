import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { startStack, signUp, type TestStack, type TestUser } from "./helpers/stack";
import { backupImage } from "./helpers/backup";
import { makeBootableImage } from "./helpers/boot-image";
import { startWorker, type WorkerHandle } from "../src/temporal/worker";
import { activitiesFor } from "../src/temporal/activities";
import { inspectPng } from "../src/verification/png";
import type { VerificationRow } from "../src/db/schema";

const MiB = 1024 * 1024;

describe("boot verification on the local target (in-process worker, real QEMU under TCG)", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let user: TestUser;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-verify-"));
  const taskQueue = `test-verify-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    stack = await startStack({
      TEMPORAL_TASK_QUEUE: taskQueue,
      RECLO_DATA_DIR: dataDir,
      QEMU_ACCEL: "tcg",
      QEMU_MEMORY_MB: "64",
      QEMU_CPUS: "1",
      RECOVERY_HEARTBEAT_TIMEOUT: "5s",
      VERIFY_BOOT_MARKER: "READY-FOR-WORK",
      VERIFY_SCREENSHOT_AFTER: "500ms",
      VERIFY_BOOT_TIMEOUT: "4s",
      VERIFY_AFTER_BACKUP: "true",
    });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    user = await signUp(stack);
  });
  afterAll(async () => {
    await worker.shutdown();
    await stack.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function finished(backupId: string): Promise<VerificationRow> {
    for (let i = 0; i < 300; i++) {
      const v = await stack.rt.services.verifications.latest(user.id, backupId);
      if (v && (v.status === "VERIFIED" || v.status === "FAILED")) return v;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("verification did not finish");
  }
  const leftovers = () => ["images", "instances"].flatMap((d) => (fs.existsSync(path.join(dataDir, "local-target", d)) ? fs.readdirSync(path.join(dataDir, "local-target", d)) : []));

  it("verifies automatically after a backup completes (VERIFY_AFTER_BACKUP)", async () => {
    const { backup } = await backupImage(stack, user.id, makeBootableImage(8 * MiB + MiB, "READY-FOR-WORK\r\n"), { sourceName: "auto" });
    const v = await finished(backup.id);
    expect(v).toMatchObject({ status: "VERIFIED", bootMarker: "READY-FOR-WORK", failureReason: null });
    expect(v.bootSeconds).toBeGreaterThan(0);
    const png = await stack.rt.s3.send(new GetObjectCommand({ Bucket: stack.config.s3.buckets.artifacts, Key: v.screenshotKey! }));
    expect(inspectPng(Buffer.from(await png.Body!.transformToByteArray())).uniform).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it("a restore point that never shows the marker is FAILED with the reason and a screenshot, and everything is cleaned up", async () => {
    const { backup } = await backupImage(stack, user.id, makeBootableImage(8 * MiB + MiB, "SOMETHING-ELSE\r\n"), { sourceName: "broken" });
    const v = await finished(backup.id);
    expect(v.status).toBe("FAILED");
    expect(v.failureReason).toMatch(/READY-FOR-WORK.*not seen/);
    expect(v.screenshotKey).toMatch(/\.png$/);
    expect(leftovers()).toEqual([]);
    // A second request while none is running starts a new verification.
    const again = await stack.rt.services.verifications.start(user.id, { backupId: backup.id, bootMarker: "SOMETHING-ELSE" });
    expect(again.id).not.toBe(v.id);
    const second = await finished(backup.id);
    expect(second).toMatchObject({ id: again.id, status: "VERIFIED" });
  });
});
