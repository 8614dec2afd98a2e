import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ReCloClient } from "../../src/client/graphql-client";
import { CancelRecoveryDocument, RecoveryProgressDocument, RecoveryTimelineDocument, StartRecoveryDocument, type RecoveryProgressSubscription } from "../../src/client/generated/graphql";
import { freePort, type Proc } from "../helpers/processes";
import { openSubscription, type Subscription } from "../helpers/ws";
import { createAccount, uniqueName } from "../helpers/stack";
import { qemuProcesses } from "../helpers/qemu";
import { backupWithCli, productEnv, startProduct, startWorker } from "../helpers/product";

const MiB = 1024 * 1024;
const IMAGE = 48 * MiB;
type Update = RecoveryProgressSubscription["recoveryProgress"];

/** Waits (polling) until `check` returns a value; fails with `what` after `timeoutMs`. */
async function until<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A TCP proxy in front of S3 that counts the bytes S3 sends back (what a worker reads). */
async function countingProxy(targetPort: number): Promise<{ port: number; bytes: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    upstream.on("data", (d: Buffer) => (bytes += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes: () => bytes,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * Faults during a local recovery, with the product as deployed (API and worker as separate
 * processes): the worker killed mid-import is shown as "waiting for a worker" within seconds, a
 * restarted worker resumes the download instead of fetching it again, and a cancel during the
 * import removes every file at once. No machine is booted (TCG is slow): both recoveries end
 * before CHECKING.
 */
describe("recovery faults: a killed worker, a resumed import, a cancel mid-import", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-faults-"));
  const localDir = path.join(dataDir, "local-target");
  let env: NodeJS.ProcessEnv;
  let api: Proc;
  let worker: Proc;
  let client: ReCloClient;
  let backupId: string;
  const subs: Subscription<RecoveryProgressSubscription>[] = [];
  let proxy: Awaited<ReturnType<typeof countingProxy>> | undefined;
  const measured: Record<string, number> = {};

  beforeAll(async () => {
    const port = await freePort();
    // 8 MiB/s: the 48 MiB download takes about 6 s, time enough to kill the worker in it.
    // Heartbeats time out after 6 s here, not the 3 s of the other product tests: they go out every
    // second (HEARTBEAT_THROTTLE), and under a loaded CI machine the live worker that had resumed
    // the download went unheard for 3 s (its attempt aborted at 33 MB and the next one read the
    // unsaved part again: 41 MB read where 31 were left; the cancel test after it then never saw
    // its download under way within 60 s). A killed worker is still shown as waiting after 4 s of
    // heartbeat silence (HEARTBEAT_SILENCE_MS), whatever the timeout.
    env = productEnv({ name: "faults", port, dataDir }, { LOCAL_IMPORT_RATE_LIMIT: String(8 * MiB), RECOVERY_HEARTBEAT_TIMEOUT: "6s" });
    ({ api, worker } = await startProduct(env));
    const graphqlUrl = `http://127.0.0.1:${port}/graphql`;
    client = new ReCloClient({ url: graphqlUrl });
    const { token } = await createAccount(client, uniqueName("faults"));
    client = client.withToken(token);
    const img = path.join(dataDir, "disk.img");
    fs.writeFileSync(img, randomBytes(IMAGE));
    backupId = await backupWithCli({ graphqlUrl, token, configDir: path.join(dataDir, "cli"), image: img, source: "faults" });
    fs.rmSync(img);
  }, 240_000);

  afterAll(async () => {
    for (const s of subs) await s.dispose();
    await Promise.all([api?.kill(), worker?.kill()]);
    await proxy?.close();
    for (const pid of qemuProcesses(dataDir)) process.kill(Number(pid), "SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
    console.log(`recovery faults: ${JSON.stringify(measured)}`);
  });

  const latest = (s: Subscription<RecoveryProgressSubscription>): Update | undefined => s.results.at(-1)?.data?.recoveryProgress;
  /** Every file the local target holds for a recovery (images, partial downloads, instances). */
  const filesOf = (recoveryId: string) =>
    ["images", "tmp", "instances"].flatMap((d) =>
      fs.existsSync(path.join(localDir, d))
        ? fs
            .readdirSync(path.join(localDir, d))
            .filter((f) => f.includes(recoveryId))
            .map((f) => `${d}/${f}`)
        : [],
    );

  it("a worker killed mid-import shows as waiting for a worker within seconds; a new worker resumes the download", async () => {
    const { startRecovery } = await client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } });
    const id = startRecovery.id;
    const sub = openSubscription(client, RecoveryProgressDocument, { recoveryId: id });
    subs.push(sub);
    const ckptFile = path.join(localDir, "tmp", `${id}.raw.ckpt`);
    // A quarter of the download on disk for good, then the worker dies without a word.
    const onDisk = () => {
      try {
        return (JSON.parse(fs.readFileSync(ckptFile, "utf8")) as { bytes: number }).bytes;
      } catch {
        return 0; // not written yet
      }
    };
    await until("a checkpointed quarter of the download", () => latest(sub)?.state === "IMPORTING" && onDisk() >= IMAGE / 4);
    await worker.kill("SIGKILL");
    const killedAt = Date.now();
    const checkpointed = (JSON.parse(fs.readFileSync(ckptFile, "utf8")) as { bytes: number }).bytes;
    expect(checkpointed).toBeGreaterThan(0);

    const waiting = await until("waiting for a worker", () => latest(sub)?.waitingForWorker, 20_000);
    measured.killToWaitingMs = Date.now() - killedAt;
    expect(measured.killToWaitingMs).toBeLessThan(8000);
    expect(waiting.observed).toMatch(/startImport|not taken by any worker/);
    expect(latest(sub)!.state).toBe("IMPORTING");

    // A new worker, reading S3 through a proxy that counts what it reads.
    const s3Port = Number(new URL(process.env.S3_ENDPOINT ?? "http://127.0.0.1:7070").port);
    // (Open until the end: this worker reaches S3 through it.)
    proxy = await countingProxy(s3Port);
    const counted = proxy;
    {
      worker = await startWorker({ ...env, S3_ENDPOINT: `http://127.0.0.1:${proxy.port}` });
      await until("the import to finish", () => ["LAUNCHING", "CHECKING", "COMPLETED", "FAILED", "CANCELLED"].includes(latest(sub)?.state ?? ""), 120_000);
      expect(latest(sub)!.state).not.toMatch(/FAILED|CANCELLED/);
      // The waiting note went once the worker was back.
      expect(latest(sub)!.waitingForWorker).toBeNull();
      measured.checkpointedBytes = checkpointed;
      measured.readAfterRestartBytes = counted.bytes();
      // Only the rest of the image (plus HTTP headers and a few small calls), not all of it again.
      // A fresh-clone run once counted 8 MB more (about a second of this rate-limited download):
      // what the new worker said (an interrupted attempt it resumed?) is printed for the next look.
      if (counted.bytes() >= IMAGE - checkpointed + 0.1 * IMAGE) {
        console.log(`read after restart ${counted.bytes()} bytes, checkpoint ${checkpointed}; the new worker said:\n${worker.output().slice(-6000)}`);
        await client.request(CancelRecoveryDocument, { id }).catch(() => undefined);
      }
      expect(counted.bytes()).toBeLessThan(IMAGE - checkpointed + 0.1 * IMAGE);
    }
    await client.request(CancelRecoveryDocument, { id });
    try {
      await until("CANCELLED", () => latest(sub)?.state === "CANCELLED", 60_000);
    } catch (err) {
      const { recovery } = await client.request(RecoveryTimelineDocument, { id });
      console.log(JSON.stringify(recovery, null, 1), worker.output().slice(-4000));
      throw err;
    }
    expect(filesOf(id)).toEqual([]);
    // The timeline numbers the import's attempts as Temporal counted them, the same on every entry.
    const { recovery } = await client.request(RecoveryTimelineDocument, { id });
    expect(recovery.events.filter((e) => e.step === "IMPORTING").map((e) => [e.status, e.attempt])).toEqual([
      ["STARTED", 1],
      ["RETRYING", 2],
      ["SUCCEEDED", 2],
    ]);
  }, 300_000);

  it("a cancel during IMPORTING stops the download and removes every file within about a second", async () => {
    const { startRecovery } = await client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } });
    const id = startRecovery.id;
    const sub = openSubscription(client, RecoveryProgressDocument, { recoveryId: id });
    subs.push(sub);
    await until("the download under way", () => {
      const u = latest(sub);
      return u?.state === "IMPORTING" && u.stepProgress >= 5 && filesOf(id).length > 0;
    });
    const t0 = Date.now();
    await client.request(CancelRecoveryDocument, { id });
    await until("every file removed", () => filesOf(id).length === 0, 10_000);
    measured.cancelToFilesGoneMs = Date.now() - t0;
    await until("CANCELLED", () => latest(sub)?.state === "CANCELLED", 30_000);
    measured.cancelToCancelledMs = Date.now() - t0;
    expect(measured.cancelToFilesGoneMs).toBeLessThan(2500);
    // Nothing came back after the cancel (the download did not run on).
    expect(filesOf(id)).toEqual([]);
    expect(fs.readdirSync(path.join(localDir, "images")).filter((f) => f.includes(id))).toEqual([]);
  }, 120_000);
});
