import "reflect-metadata";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { eq } from "drizzle-orm";
import { loadConfig } from "../src/config";
import { createLogger } from "../src/logger";
import { createRuntime, type Runtime } from "../src/runtime";
import { startWorker, type WorkerHandle } from "../src/temporal/worker";
import { activitiesFor } from "../src/worker-activities";
import { backupImage } from "../test/helpers/backup";
import { users, type VerificationRow } from "../src/db/schema";
import { newId } from "../src/shared/ids";

/**
 * Boot verification overhead: the time from `verifyBackup` to the verdict for the linux-ok test
 * system, split into composing, importing, launching, booting (launch → first positive signal),
 * checking (first positive signal → verdict) and cleanup, against the same-run time of a bare
 * `qemu-system-x86_64` boot of the same disk (same machine type, CPU, memory, NIC) to its first
 * positive signal: the serial "RECLO-TEST-READY" line or the SSH banner on a forwarded port.
 *
 *   node -r @swc-node/register bench/verify.ts [--runs 1] [--help]
 *
 * Goal: verification ≤ 1.5× the bare boot. Runs alternate which goes first; medians are printed.
 * The API services and a worker run in this process (database reclo_bench, created and migrated
 * if missing; a task queue of its own). Everything it creates is removed at the end (the
 * verification cleans up its own machine and objects; the bench deletes its user, its backup's
 * objects and the bare boot's files), also after a failure or the overall timeout.
 */

const GOAL_RATIO = 1.5;
const READY = "RECLO-TEST-READY";
const run = promisify(execFile);

const HELP = `Usage: node -r @swc-node/register bench/verify.ts [options]

  --runs R              repetitions (default 1; alternating which goes first; medians printed)
  --grace-s S           VERIFY_EVIDENCE_GRACE for the run (default: the configured one, 10s)
  --database-url URL    (default mysql://root@127.0.0.1:3306/reclo_bench; created and migrated if missing)
  --timeout-s S         the whole run stops (and cleans up) after S seconds (default 1200)
  --json FILE           also write the raw results as JSON

QEMU settings (QEMU_MEMORY_MB, QEMU_CPUS) come from the environment, as for the product; both
sides use the same. QEMU_ACCEL defaults to tcg here (set QEMU_ACCEL=kvm to compare under KVM): a
/dev/kvm that opens but cannot run a guest (nested virtualisation) makes the local target fall back
to TCG after a failed start, which the bare boot would not mirror.
`;

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "1" },
    "grace-s": { type: "string" },
    "database-url": { type: "string", default: "mysql://root@127.0.0.1:3306/reclo_bench" },
    "timeout-s": { type: "string", default: "1200" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
});
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const ROOT = path.resolve(__dirname, "..");
const cleanups: (() => Promise<unknown>)[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const f1 = (x: number) => x.toFixed(1);

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Reads what a TCP service says first (within 2 s), or null. */
function banner(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let data = "";
    const done = (v: string | null) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(2000, () => done(data || null));
    sock.on("data", (d) => {
      data += d.toString("latin1");
      if (data.includes("\n")) done(data);
    });
    sock.on("error", () => done(null));
    sock.on("close", () => done(data || null));
  });
}

interface BareResult {
  seconds: number;
  signal: string;
}

/** A bare QEMU boot of the raw disk, the local target's machine without ReClo around it. */
async function bareBoot(disk: string, q: { accel: string; memoryMb: number; cpus: number; binary: string }, timeoutMs: number): Promise<BareResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-bench-bare-"));
  const copy = path.join(dir, "disk.raw");
  fs.copyFileSync(disk, copy);
  const serial = path.join(dir, "serial.log");
  const port = await freePort();
  const args = [
    "-machine", `q35,accel=${q.accel}`,
    "-cpu", q.accel === "kvm" ? "host" : "max",
    "-m", String(q.memoryMb),
    "-smp", String(q.cpus),
    "-display", "none",
    "-drive", `file=${copy},format=raw,if=ide,cache=writeback`,
    "-serial", `file:${serial}`,
    "-netdev", `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:22`,
    "-device", "e1000,netdev=n0,romfile=",
  ];
  let child: ChildProcess | undefined;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  cleanups.push(stop);
  try {
    const t0 = performance.now();
    child = spawn(q.binary, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    let probing: Promise<string | null> | null = null;
    let sshAt: number | undefined;
    while (performance.now() - t0 < timeoutMs) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`bare QEMU exited (${child.exitCode ?? child.signalCode}): ${stderr}`);
      const log = fs.existsSync(serial) ? fs.readFileSync(serial, "latin1") : "";
      if (log.includes(READY)) return { seconds: (performance.now() - t0) / 1000, signal: `serial "${READY}"` };
      if (sshAt !== undefined) return { seconds: sshAt, signal: "SSH banner" };
      probing ??= banner(port).then((b) => {
        if (b?.startsWith("SSH-")) sshAt = (performance.now() - t0) / 1000;
        probing = null;
        return b;
      });
      await sleep(100);
    }
    throw new Error(`the bare boot showed no positive signal within ${timeoutMs / 1000} s`);
  } finally {
    await stop();
    cleanups.splice(cleanups.indexOf(stop), 1);
  }
}

interface VerifyResult {
  totalSeconds: number;
  verdictSeconds: number;
  status: string;
  bootSeconds: number | null;
  phases: Record<string, number>;
  firstPositive: string | null;
}

/** Activity [scheduled, closed] times (epoch ms) from the verification workflow's history. */
async function activitySpans(rt: Runtime, workflowId: string): Promise<Map<string, { start: number; end: number }>> {
  const history = await rt.temporal.client.workflow.getHandle(workflowId).fetchHistory();
  const byId = new Map<string, { type: string; start: number }>();
  const spans = new Map<string, { start: number; end: number }>();
  const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + Math.round((t?.nanos ?? 0) / 1e6);
  for (const e of history.events ?? []) {
    const at = ms(e.eventTime as never);
    if (e.activityTaskScheduledEventAttributes) byId.set(String(e.eventId), { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? "?", start: at });
    const closed = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (closed) {
      const s = byId.get(String(closed.scheduledEventId));
      if (s) spans.set(s.type, { start: s.start, end: at });
    }
  }
  return spans;
}

async function verifyOnce(rt: Runtime, userId: string, backupId: string, timeoutMs: number): Promise<VerifyResult> {
  const t0 = Date.now();
  const started = await rt.services.verifications.start(userId, { backupId });
  let v: VerificationRow;
  for (;;) {
    v = await rt.services.verifications.get(userId, started.id);
    if (v.status === "VERIFIED" || v.status === "FAILED" || v.status === "INCONCLUSIVE") break;
    if (Date.now() - t0 > timeoutMs) throw new Error("the verification did not finish in time");
    await sleep(100);
  }
  const doneAt = Date.now();
  const spans = await activitySpans(rt, v.workflowId);
  const span = (name: string) => spans.get(name);
  const positive = (v.evidence ?? []).filter((e) => e.ok && e.kind !== "FIRMWARE").map((e) => Date.parse(e.at));
  const firstPositiveAt = positive.length ? Math.min(...positive) : undefined;
  const compose = span("composeForVerification");
  const imp = span("importForVerification");
  const launch = span("launchIsolated");
  const watch = span("awaitBootEvidence");
  const cleanup = span("cleanupVerification");
  const finish = span("finishVerification");
  const s = (a?: number, b?: number) => (a !== undefined && b !== undefined ? (b - a) / 1000 : NaN);
  const phases: Record<string, number> = {
    "start → compose": s(t0, compose?.start),
    composing: s(compose?.start, compose?.end),
    importing: s(imp?.start, imp?.end),
    launching: s(launch?.start, launch?.end),
    "booting (launch → first positive signal)": s(launch?.end, firstPositiveAt),
    "checking (first signal → verdict)": s(firstPositiveAt, watch?.end),
    "cleanup + record": s(watch?.end, finish?.end ?? cleanup?.end),
  };
  return {
    totalSeconds: (doneAt - t0) / 1000,
    verdictSeconds: s(t0, watch?.end),
    status: v.status,
    bootSeconds: v.bootSeconds,
    phases,
    firstPositive: (v.evidence ?? []).find((e) => e.ok && e.kind !== "FIRMWARE" && Date.parse(e.at) === firstPositiveAt)?.detail ?? null,
  };
}

async function deletePrefix(s3: S3Client, bucket: string, prefix: string): Promise<void> {
  for (;;) {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (!keys.length) return;
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
  }
}

async function main(): Promise<number> {
  const runs = Math.max(1, Number(opts.runs));
  const timeoutMs = Number(opts["timeout-s"]) * 1000;
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
  const { stdout } = await run("bash", [path.join(ROOT, "scripts/test-systems.sh"), "linux-ok"], { cwd: ROOT, timeout: 900_000 });
  const disk = stdout.trim().split("\n").find((l) => l.startsWith("linux-ok "))!.slice("linux-ok ".length);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-bench-verify-"));
  cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({
    QEMU_ACCEL: "tcg",
    ...process.env,
    DATABASE_URL: opts["database-url"],
    MIGRATE_ON_START: "true",
    LOG_LEVEL: "warn",
    RECLO_DATA_DIR: dataDir,
    TEMPORAL_TASK_QUEUE: `bench-verify-${process.pid}-${Date.now()}`,
    ...(opts["grace-s"] ? { VERIFY_EVIDENCE_GRACE: `${opts["grace-s"]}s` } : {}),
  });
  const logger = createLogger(config.logLevel);
  const rt = await createRuntime(config, logger);
  cleanups.push(() => rt.close());
  const accel = (rt.targets.LOCAL as unknown as { resolveAccel(): "kvm" | "tcg" }).resolveAccel();
  const q = { accel, memoryMb: config.local.memoryMb, cpus: config.local.cpus, binary: config.local.qemuSystem };
  const worker: WorkerHandle = await startWorker({ config: config.temporal, activities: activitiesFor(rt), logger });
  cleanups.push(() => worker.shutdown());
  const userId = newId();
  await rt.database.db.insert(users).values({ id: userId, username: `bench${userId.slice(-12)}`, email: `bench-${userId}@example.com`, passwordHash: "-", createdAt: new Date(), updatedAt: new Date() } as never);
  cleanups.push(async () => {
    for (const b of Object.values(config.s3.buckets)) await deletePrefix(rt.s3, b, `${userId}/`);
    await rt.database.db.delete(users).where(eq(users.id, userId));
  });
  const backupId = (await backupImage({ rt }, userId, fs.readFileSync(disk), { sourceName: "bench-linux-ok" })).backup.id;

  process.stdout.write(`bench/verify: linux-ok (${(fs.statSync(disk).size / 2 ** 20).toFixed(0)} MiB raw), QEMU ${q.accel} ${q.memoryMb} MiB ${q.cpus} CPU(s), ${runs} run(s), evidence grace ${config.verification.evidenceGraceMs / 1000} s, load average at start ${load}\n\n`);
  const bare: BareResult[] = [];
  const verified: VerifyResult[] = [];
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? ["bare", "verify"] : ["verify", "bare"];
    for (const which of order) {
      if (which === "bare") {
        const b = await bareBoot(disk, q, timeoutMs);
        bare.push(b);
        process.stdout.write(`run ${i + 1}: bare boot ${f1(b.seconds)} s (${b.signal}; load ${os.loadavg()[0]!.toFixed(2)})\n`);
      } else {
        const v = await verifyOnce(rt, userId, backupId, timeoutMs);
        verified.push(v);
        process.stdout.write(`run ${i + 1}: verifyBackup → verdict ${f1(v.verdictSeconds)} s, → recorded ${f1(v.totalSeconds)} s (${v.status}, bootSeconds ${v.bootSeconds}; first signal: ${v.firstPositive}; load ${os.loadavg()[0]!.toFixed(2)})\n`);
      }
    }
  }
  const bareMed = median(bare.map((b) => b.seconds));
  const verdictMed = median(verified.map((v) => v.verdictSeconds));
  process.stdout.write(`\n${"phase".padEnd(44)}  ${"median s".padStart(9)}  ${"share".padStart(6)}\n${"-".repeat(44)}  ${"-".repeat(9)}  ${"-".repeat(6)}\n`);
  const total = median(verified.map((v) => v.totalSeconds));
  for (const name of Object.keys(verified[0]!.phases)) {
    const m = median(verified.map((v) => v.phases[name]!));
    process.stdout.write(`${name.padEnd(44)}  ${f1(m).padStart(9)}  ${`${Math.round((m / total) * 100)} %`.padStart(6)}\n`);
  }
  process.stdout.write(`${"verifyBackup → verdict recorded".padEnd(44)}  ${f1(total).padStart(9)}  ${"100 %".padStart(6)}\n`);
  process.stdout.write(`${"bare qemu-system-x86_64 boot (baseline)".padEnd(44)}  ${f1(bareMed).padStart(9)}\n\n`);
  const ratio = verdictMed / bareMed;
  const ok = verified.every((v) => v.status === "VERIFIED") && ratio <= GOAL_RATIO;
  process.stdout.write(
    `${ok ? "PASS" : "MISS"}  verification ${f1(verdictMed)} s from verifyBackup to the verdict = ${ratio.toFixed(2)}× the bare boot to its first positive signal (${f1(bareMed)} s); goal ≤ ${GOAL_RATIO}×` +
      ` (to the recorded verdict, after cleanup: ${(total / bareMed).toFixed(2)}×)\n`,
  );
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ load, q, bare, verified, ratio }, null, 2));
  return ok ? 0 : 1;
}

async function cleanup(): Promise<void> {
  for (const c of cleanups.reverse()) await c().catch((err: unknown) => process.stderr.write(`cleanup: ${err instanceof Error ? err.message : err}\n`));
  cleanups.length = 0;
}

const overall = setTimeout(() => {
  process.stderr.write(`bench/verify: timed out after ${opts["timeout-s"]} s\n`);
  void cleanup().finally(() => process.exit(3));
}, Number(opts["timeout-s"]) * 1000);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));

main()
  .then(async (code) => {
    clearTimeout(overall);
    await cleanup();
    process.exit(code);
  })
  .catch(async (err: unknown) => {
    clearTimeout(overall);
    process.stderr.write(`bench/verify: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
    await cleanup();
    process.exit(2);
  });
