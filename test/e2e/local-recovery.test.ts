import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { ReCloClient } from "../../src/client/graphql-client";
import {
  BackupsDocument,
  BackupVerificationDocument,
  InstanceConsoleDocument,
  InstanceScreenshotDocument,
  RecoveryProgressDocument,
  RecoveryTimelineDocument,
  StartInstanceDocument,
  StartRecoveryDocument,
  StopInstanceDocument,
  TerminateInstanceDocument,
  VerifyBackupDocument,
  type RecoveryProgressSubscription,
} from "../../src/client/generated/graphql";
import { makeBootableImage } from "../helpers/boot-image";
import { freePort, type Proc } from "../helpers/processes";
import { openSubscription, withTimeout } from "../helpers/ws";
import { createAccount, uniqueName } from "../helpers/stack";
import { qemuProcesses } from "../helpers/qemu";
import { backupWithCli, productEnv, startProduct, startWorker } from "../helpers/product";
import { createDatabase } from "../../src/db/client";
import { instances, recoveryEvents } from "../../src/db/schema";
import { inspectPng } from "../../src/evidence/png";

const MARKER = "RECLO-E2E-BOOTED";
const MiB = 1024 * 1024;

/**
 * The product as a user runs it, all real but the disk contents: API and worker as separate
 * processes sharing Redis, the `reclo` CLI backing up a bootable image, recovery to the local
 * QEMU target (TCG) while subscribed to progress, the worker killed mid-step and restarted,
 * instance lifecycle through GraphQL, then a boot verification of the same backup.
 */
describe("end to end: backup with the agent → local recovery → verification", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-e2e-"));
  const localDir = path.join(dataDir, "local-target");
  let env: NodeJS.ProcessEnv;
  let api: Proc;
  let worker: Proc;
  let client: ReCloClient;
  let graphqlUrl: string;
  let token: string;
  let backupId: string;
  const timings: Record<string, number> = {};



  beforeAll(async () => {
    const port = await freePort();
    env = productEnv({ name: "e2e", port, dataDir, marker: MARKER });
    ({ api, worker } = await startProduct(env));
    graphqlUrl = `http://127.0.0.1:${port}/graphql`;
    client = new ReCloClient({ url: graphqlUrl });
    const name = uniqueName("e2e");
    ({ token } = await createAccount(client, name));
    client = client.withToken(token);
  }, 180_000);

  afterAll(async () => {
    await Promise.all([api?.kill(), worker?.kill()]);
    for (const pid of qemuProcesses(dataDir)) process.kill(Number(pid), "SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
    console.log(`e2e timings: ${JSON.stringify(timings)}`);
  });

  it("backs up a bootable disk image with the reclo CLI", async () => {
    const img = path.join(dataDir, "server.img");
    fs.writeFileSync(img, makeBootableImage(3 * 8 * MiB + 3 * MiB, `${MARKER}\r\n`));
    backupId = await backupWithCli({ graphqlUrl, token, configDir: path.join(dataDir, "cli"), image: img, source: "e2e-server" });
    const { backups } = await client.request(BackupsDocument, { filter: { sourceName: "e2e-server" } });
    expect(backups.edges.map((e) => e.node.id)).toEqual([backupId]);
  }, 120_000);

  it("recovers it on the local QEMU target: timed from startRecovery to COMPLETED", async () => {
    const t0 = Date.now();
    const { startRecovery } = await client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } });
    const sub = openSubscription(client, RecoveryProgressDocument, { recoveryId: startRecovery.id });
    await withTimeout(sub.ended, 120_000, "recovery to finish");
    timings.startRecoveryToCompletedMs = Date.now() - t0;
    expect(sub.results.at(-1)!.data!.recoveryProgress.state).toBe("COMPLETED");
    await sub.dispose();
    const { recovery } = await client.request(RecoveryTimelineDocument, { id: startRecovery.id });
    await client.request(TerminateInstanceDocument, { id: recovery.instance!.id });
    expect(qemuProcesses(dataDir)).toHaveLength(0);
  }, 180_000);

  it("recovers it again while the client watches every state, surviving a worker kill mid-step", async () => {
    const t0 = Date.now();
    const { startRecovery } = await client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } });
    const sub = openSubscription(client, RecoveryProgressDocument, { recoveryId: startRecovery.id });
    // Kill the worker as soon as it is working on the recovery, then start a new one.
    await sub.waitFor(2, 60_000);
    await worker.kill("SIGKILL");
    const killedIn = (sub.results.at(-1)!.data!.recoveryProgress as RecoveryProgressSubscription["recoveryProgress"]).state;
    worker = await startWorker(env);
    await withTimeout(sub.ended, 120_000, "recovery to finish");
    timings.withWorkerKillMs = Date.now() - t0;

    const seen = sub.results.map((r) => r.data!.recoveryProgress as RecoveryProgressSubscription["recoveryProgress"]);
    const states = seen.map((s) => s.state).filter((s, i, all) => s !== all[i - 1]);
    expect(states.at(-1)).toBe("COMPLETED");
    const order = ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING", "CHECKING", "COMPLETED"];
    expect(states).toEqual(order.slice(order.indexOf(states[0]!)));
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.totalProgress).toBeGreaterThanOrEqual(seen[i - 1]!.totalProgress);
    await sub.dispose();

    const { recovery } = await client.request(RecoveryTimelineDocument, { id: startRecovery.id });
    expect(recovery.instance).toMatchObject({ provider: "LOCAL", state: "RUNNING", zone: "local" });
    expect(recovery.instance!.address).toMatch(/^127\.0\.0\.1:\d+$/);
    // Completed once: one instance row, one QEMU process.
    const db = createDatabase(inject("databaseUrl"), 1);
    const rows = await db.db.select().from(instances).where(eq(instances.recoveryId, startRecovery.id));
    const events = await db.db.select().from(recoveryEvents).where(eq(recoveryEvents.recoveryId, startRecovery.id));
    await db.close();
    expect(rows).toHaveLength(1);
    expect(qemuProcesses(dataDir)).toHaveLength(1);
    expect(killedIn).not.toBe("COMPLETED");
    expect(events.length).toBeGreaterThanOrEqual(6);

    // The guest printed its marker on the serial console.
    const instanceId = recovery.instance!.id;
    let console_ = "";
    for (let i = 0; i < 100 && !console_.includes(MARKER); i++) {
      console_ = (await client.request(InstanceConsoleDocument, { id: instanceId })).instance.consoleOutput;
      if (!console_.includes(MARKER)) await new Promise((r) => setTimeout(r, 200));
    }
    expect(console_).toContain(MARKER);
    const shot = (await client.request(InstanceScreenshotDocument, { id: instanceId })).instance.screenshot;
    const png = Buffer.from(await (await fetch(shot.url)).arrayBuffer());
    expect(shot.contentType).toBe("image/png");
    expect(inspectPng(png).uniform).toBe(false);

    // Stop, start, terminate through GraphQL.
    const stopped = await client.request(StopInstanceDocument, { id: instanceId });
    expect(stopped.stopInstance).toMatchObject({ state: "STOPPED" });
    expect(stopped.stopInstance.lastStoppedAt).not.toBeNull();
    expect(qemuProcesses(dataDir)).toHaveLength(0);
    const started = await client.request(StartInstanceDocument, { id: instanceId });
    expect(started.startInstance.state).toBe("RUNNING");
    expect(qemuProcesses(dataDir)).toHaveLength(1);
    const terminated = await client.request(TerminateInstanceDocument, { id: instanceId });
    expect(terminated.terminateInstance.state).toBe("TERMINATED");
    expect(qemuProcesses(dataDir)).toHaveLength(0);
    const left = ["images", "instances"].flatMap((d) => (fs.existsSync(path.join(localDir, d)) ? fs.readdirSync(path.join(localDir, d)) : []));
    expect(left).toEqual([]);
  }, 240_000);

  it("verifies the same backup boots: VERIFIED with a PNG screenshot, nothing left running", async () => {
    const sub = openSubscription(client, BackupVerificationDocument, { backupId });
    await sub.connected;
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const { verifyBackup } = await client.request(VerifyBackupDocument, { input: { backupId } });
    expect(["PENDING", "RUNNING"]).toContain(verifyBackup.status);
    await withTimeout(sub.ended, 120_000, "verification to finish");
    timings.verificationMs = Date.now() - t0;
    const last = sub.results.at(-1)!.data!.backupVerification;
    expect(last).toMatchObject({ id: verifyBackup.id, status: "VERIFIED", failureReason: null });
    expect(last.bootSeconds).toBeGreaterThan(0);
    timings.bootSeconds = last.bootSeconds!;
    const png = Buffer.from(await (await fetch(last.screenshotUrl!)).arrayBuffer());
    const info = inspectPng(png);
    expect(info.width).toBeGreaterThan(0);
    expect(info.uniform).toBe(false);
    expect(qemuProcesses(dataDir)).toHaveLength(0);
    const left = ["images", "instances"].flatMap((d) => (fs.existsSync(path.join(localDir, d)) ? fs.readdirSync(path.join(localDir, d)) : []));
    expect(left).toEqual([]);
    await sub.dispose();
    // The pgrep view agrees: no QEMU of this run anywhere.
    const pgrep = (() => {
      try {
        return execFileSync("pgrep", ["-f", `qemu-system.*${dataDir}`]).toString().trim();
      } catch {
        return ""; // exit 1: no process matched
      }
    })();
    expect(pgrep).toBe("");
  }, 180_000);
});
