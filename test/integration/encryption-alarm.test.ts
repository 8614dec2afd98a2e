import { createCipheriv, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { BackupDocument, BackupsDocument, ReauthenticateDocument, ResolveSuspectBackupDocument } from "../../src/client/generated/graphql";
import { runBackup } from "../../src/cli/backup";
import { backups, notifications, recoveries } from "../../src/db/schema";
import { sampleEntropy } from "../../src/shared/bytes";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import type { ChildProcess } from "node:child_process";
import { backupImage } from "../helpers/backup";
import { killChildren, spawnCli } from "../helpers/cli";
import { cliSourceEnv } from "../helpers/processes";
import { clearMailsTo, mailsTo, waitForMail } from "../helpers/mailpit";
import { errorOf, signUp, startStack, uniqueName, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

const MiB = 1024 * 1024;
const CHUNK = 8 * MiB; // the smallest chunk size (chunkSizeFor)
/** 100 chunks (an 800 MiB image): one changed chunk is a real 1 % incremental. */
const CHUNKS = 100;
/** AES over this many chunks: most of the disk. */
const ENCRYPTED = 90;
const TEXT = Buffer.from(
  "Invoice 2026-11 for Example GmbH: 12 x consulting hours at 95.00 EUR, VAT 19 %, payable within 30 days. " +
    "The quick brown fox jumps over the lazy dog; meeting notes, spreadsheets and letters fill a small office disk.\n",
);

/** A chunk of office-like text (low entropy), unique per chunk and version. */
function textChunk(tag: string): Buffer {
  const buf = Buffer.alloc(CHUNK);
  for (let off = 0; off < CHUNK; off += TEXT.length) TEXT.copy(buf, off);
  buf.write(`${tag} ${randomBytes(8).toString("hex")}\n`, 0);
  return buf;
}

/** AES-256-CTR over chunks [from, to) of the image file in place: what ransomware does to a disk. */
function encryptChunks(file: string, from: number, to: number): void {
  const cipher = createCipheriv("aes-256-ctr", randomBytes(32), randomBytes(16));
  const fd = fs.openSync(file, "r+");
  try {
    const buf = Buffer.alloc(CHUNK);
    for (let i = from; i < to; i++) {
      fs.readSync(fd, buf, 0, CHUNK, i * CHUNK);
      fs.writeSync(fd, cipher.update(buf), 0, CHUNK, i * CHUNK);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** An ordinary day: one chunk's text edited. */
function editChunk(file: string, index: number, tag: string): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.writeSync(fd, Buffer.from(`${tag} edited ${randomBytes(8).toString("hex")}\n`), 0, undefined, index * CHUNK + 4096);
  } finally {
    fs.closeSync(fd);
  }
}

let stack: TestStack;
let worker: WorkerHandle;
let tmp: string;
const taskQueue = `test-alarm-${process.pid}-${Date.now()}`;

beforeAll(async () => {
  stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue });
  worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-alarm-"));
});

afterAll(async () => {
  await worker?.shutdown();
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("the sampled entropy measure", () => {
  it("is 0 for one repeated byte, about 8 for random or AES-encrypted data, and well below 7.5 for office text", () => {
    expect(sampleEntropy(Buffer.alloc(CHUNK, 7))).toBe(0);
    expect(sampleEntropy(randomBytes(CHUNK))).toBeGreaterThan(7.9);
    const text = textChunk("t");
    expect(sampleEntropy(text)).toBeLessThan(5);
    expect(sampleEntropy(createCipheriv("aes-256-ctr", randomBytes(32), randomBytes(16)).update(text))).toBeGreaterThan(7.9);
  });
});

describe("encryption alarm: the real backup engine against the real API, S3, Temporal and mailpit (issue 18)", () => {
  let user: TestUser;
  let image: string;
  let configDir: string;
  const source = uniqueName("office");
  const ids: string[] = [];
  const backup = () => runBackup({ client: user.client, imagePath: image, sourceName: source, configDir, serverUrl: stack.app.graphqlUrl });
  const alarms = () => stack.rt.database.db.select().from(notifications).where(and(eq(notifications.userId, user.id), eq(notifications.kind, "ENCRYPTION_SUSPECTED")));
  const suspectOf = async (id: string) => (await user.client.request(BackupDocument, { id })).backup.suspect;

  beforeAll(async () => {
    user = await signUp(stack);
    await clearMailsTo(user.email);
    image = path.join(tmp, "office.img");
    configDir = path.join(tmp, "config");
    // The same office text in every chunk: the FULL stores one chunk (identical chunks deduplicate),
    // so the 800 MiB image costs one 8 MiB upload; each day's edit and each encrypted chunk is new.
    const fd = fs.openSync(image, "w");
    const text = textChunk("office");
    for (let i = 0; i < CHUNKS; i++) fs.writeSync(fd, text, 0, CHUNK, i * CHUNK);
    fs.closeSync(fd);
  });

  it("a FULL and two ordinary 1 % incrementals (1 of 100 chunks each) raise nothing and record their change", async () => {
    const full = await backup();
    expect(full.kind).toBe("FULL");
    ids.push(full.backupId);
    for (const [n, chunk] of [
      [1, 3],
      [2, 57],
    ] as const) {
      editChunk(image, chunk, `day ${n}`);
      const r = await backup();
      expect(r).toMatchObject({ kind: "INCREMENTAL", status: "COMPLETED", chunksUploaded: 1 });
      ids.push(r.backupId);
      const { backup: b } = await user.client.request(BackupDocument, { id: r.backupId });
      expect(b).toMatchObject({ changedChunks: 1, suspect: null });
      const [row] = await stack.rt.database.db.select().from(backups).where(eq(backups.id, r.backupId));
      expect(row!.agentEntropy).toBeGreaterThan(3); // the agent measured its one new (text) chunk…
      expect(row!.agentEntropy).toBeLessThan(5);
    }
    expect(await alarms()).toEqual([]);
  });

  it("encrypting most of the disk (AES-256-CTR over 90 of 100 chunks) raises exactly one alarm, e-mailed, and marks the restore point suspect", async () => {
    encryptChunks(image, 0, ENCRYPTED);
    const r = await backup();
    expect(r).toMatchObject({ kind: "INCREMENTAL", status: "COMPLETED", chunksUploaded: ENCRYPTED });
    ids.push(r.backupId);
    const suspect = await suspectOf(r.backupId);
    expect(suspect).toMatchObject({ changedPercent: 90, usualPercent: 1, sampledChunks: 4, verdict: null, resolvedAt: null });
    expect(suspect!.entropy).toBeGreaterThan(7.9);
    expect(suspect!.agentEntropy).toBeGreaterThan(7.9);
    expect(suspect!.reason).toMatch(/^90 % of the disk changed \(usually 1 %\)/);

    const raised = await alarms();
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ subjectType: "BACKUP", subjectId: r.backupId, dedupeKey: `encryption-suspected:${r.backupId}`, title: `Possible ransomware encryption on ${source}` });
    const mail = await waitForMail(user.email, /Possible ransomware encryption/);
    expect(mail.Subject).toBe(`[ReClo] Possible ransomware encryption on ${source}`);
    expect(mail.Text).toContain("marked SUSPECT");
    // Delivery has finished (the workflow's result): still one such mail.
    await stack.rt.temporal.client.workflow.getHandle(`notification-${raised[0]!.id}`).result();
    expect((await mailsTo(user.email)).filter((m) => /ransomware/.test(m.Subject))).toHaveLength(1);

    // The picker's list carries it.
    const list = (await user.client.request(BackupsDocument, { first: 10, filter: { sourceName: source } })).backups.edges.map((e) => e.node);
    expect(list.find((b) => b.id === r.backupId)!.suspect?.changedPercent).toBe(90);
    expect(list.filter((b) => b.suspect)).toHaveLength(1);
  });

  it("the CLI marks the suspect restore point and the last clean one; `reclo recover` warns and asks before recovering the suspect one", async () => {
    const children = new Set<ChildProcess>();
    const reclo = (args: string[], input?: string) =>
      spawnCli(children, args, { env: { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: configDir, RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: user.token }, input });
    try {
      const list = await reclo(["backups", "--source", source]);
      expect(list.code).toBe(0);
      const lines = list.stdout.split("\n");
      expect(lines[0]).toMatch(/ALARM\s*$/);
      expect(lines.find((l) => l.startsWith(ids[3]!))).toContain("SUSPECT: possible ransomware (90 % changed)");
      expect(lines.find((l) => l.startsWith(ids[2]!))).toMatch(/last clean\s*$/);
      expect(lines.find((l) => l.startsWith(ids[1]!))).not.toMatch(/last clean|SUSPECT/);
      expect(list.stdout).toContain(`WARNING: possible ransomware encryption of ${source} in ${ids[3]}`);
      expect(list.stdout).toContain(`reclo backups resolve ${ids[3]} --safe`);

      // Picking the suspect point (1, the newest) warns and, without a yes, recovers nothing.
      const pick = await reclo(["recover", "--source", source], "1\nn\n");
      expect(pick.code).not.toBe(0);
      expect(pick.stderr).toMatch(/ALARM/);
      expect(pick.stderr).toContain("WARNING: restore point 1 is suspected of holding a ransomware-encrypted disk");
      expect(pick.stderr).toContain("The last clean restore point is 2.");
      expect(await stack.rt.database.db.select().from(recoveries).where(eq(recoveries.userId, user.id))).toEqual([]);

      // --safe lifts retention's hold: with a session that has not re-entered its password, refused with a reason.
      const safe = await reclo(["backups", "resolve", ids[3]!, "--safe"]);
      expect(safe.code).not.toBe(0);
      expect(safe.stderr).toContain(`Marking ${ids[3]} safe lets retention delete the clean restore points it holds, so the server asks for your password again first (REAUTH_REQUIRED)`);
      expect((await suspectOf(ids[3]!))!.verdict).toBeNull();
    } finally {
      killChildren(children);
    }
  });

  it("retention keeps the last clean restore points while unanswered and after ENCRYPTED (later backups of the encrypted disk do not push them out); SAFE needs a fresh authentication and lifts the hold", async () => {
    const suspectId = ids[3]!;
    await stack.rt.services.maintenance.setRetentionPolicy(user.id, { keepWeeklyFull: 1, keepDaily: 0 });
    const statuses = async () => {
      const now = new Map((await stack.rt.database.db.select().from(backups).where(eq(backups.userId, user.id))).map((b) => [b.id, b.status]));
      return ids.map((id) => now.get(id));
    };
    await stack.rt.services.maintenance.applyRetention({ userIds: [user.id] });
    expect(await statuses()).toEqual(["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED"]);

    // Someone else cannot answer for it; an unsuspected restore point has nothing to answer.
    const other = await signUp(stack);
    expect((await errorOf(other.client.request(ResolveSuspectBackupDocument, { id: suspectId, verdict: "SAFE" as const }))).code).toBe("NOT_FOUND");
    expect((await errorOf(user.client.request(ResolveSuspectBackupDocument, { id: ids[1]!, verdict: "SAFE" as const }))).code).toBe("CONFLICT");
    expect((await errorOf(user.client.request(ResolveSuspectBackupDocument, { id: suspectId }))).code).toBe("BAD_USER_INPUT");

    // ENCRYPTED: no fresh authentication needed; the hold stays.
    const encrypted = (await user.client.request(ResolveSuspectBackupDocument, { id: suspectId, verdict: "ENCRYPTED" as const })).resolveSuspectBackup;
    expect(encrypted.suspect).toMatchObject({ verdict: "ENCRYPTED", changedPercent: 90 });
    // The next day's backup of the encrypted disk: a 1 % change, no alarm, and the newest restore point.
    editChunk(image, 95, "day 4");
    const after = await backup();
    expect(after).toMatchObject({ kind: "INCREMENTAL", status: "COMPLETED", chunksUploaded: 1 });
    ids.push(after.backupId);
    expect(await suspectOf(after.backupId)).toBeNull();
    await stack.rt.services.maintenance.applyRetention({ userIds: [user.id] });
    // The policy alone would keep only the FULL and the newest: the three clean points before the
    // encrypted one and the encrypted one itself stay.
    expect(await statuses()).toEqual(["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED"]);

    // SAFE removes that protection: a session that has not re-entered its password is refused.
    const stale = await errorOf(user.client.request(ResolveSuspectBackupDocument, { id: suspectId, verdict: "SAFE" as const }));
    expect(stale.code).toBe("REAUTH_REQUIRED");
    expect((await suspectOf(suspectId))!.verdict).toBe("ENCRYPTED");
    await user.client.request(ReauthenticateDocument, { password: PASSWORD });
    const resolved = (await user.client.request(ResolveSuspectBackupDocument, { id: suspectId, verdict: "SAFE" as const })).resolveSuspectBackup;
    expect(resolved.suspect).toMatchObject({ verdict: "SAFE", changedPercent: 90 });
    expect(resolved.suspect!.resolvedAt).not.toBeNull();
    await stack.rt.services.maintenance.applyRetention({ userIds: [user.id] });
    // The policy alone: the newest FULL and the latest restore point stay.
    expect(await statuses()).toEqual(["COMPLETED", "DELETED", "DELETED", "DELETED", "COMPLETED"]);
    expect(await alarms()).toHaveLength(1);
  });
});

describe("encryption alarm: a small image (fewer chunks than minChangedChunks)", () => {
  /**
   * `chunks` chunks of office text backed up FULL, then `quiet` incrementals that change nothing (the
   * source's usual rate: 0 %), then the first `encrypt` chunks AES-encrypted as an incremental.
   */
  const encryptSmall = async (chunks: number, encrypt: number, quiet: number) => {
    const user = await signUp(stack);
    const sourceName = uniqueName("small");
    const clean = Buffer.concat(Array.from({ length: chunks }, (_, i) => textChunk(`small ${i}`)));
    let parent = (await backupImage(stack, user.id, clean, { sourceName })).backup;
    for (let q = 0; q < quiet; q++) parent = (await backupImage(stack, user.id, clean, { sourceName, kind: "INCREMENTAL", parentBackupId: parent.id })).backup;
    const encrypted = Buffer.from(clean);
    createCipheriv("aes-256-ctr", randomBytes(32), randomBytes(16)).update(clean.subarray(0, encrypt * CHUNK)).copy(encrypted, 0);
    return (await backupImage(stack, user.id, encrypted, { sourceName, kind: "INCREMENTAL", parentBackupId: parent.id })).backup;
  };

  it("all 3 of its 3 chunks turned random after an unchanging incremental is an alarm: not skipped for being small", async () => {
    const backup = await encryptSmall(3, 3, 1);
    expect(backup.changedChunks).toBe(3);
    expect(backup.suspect).toMatchObject({ changedPercent: 100, usualPercent: 0, sampledChunks: 3 });
  });

  it("2 of its 3 chunks is not (67 %, but a share of 3 chunks is coarse: all of it), nor 3 of 3 on its first incremental (no usual rate to jump from)", async () => {
    const partly = await encryptSmall(3, 2, 1);
    expect(partly.changedChunks).toBe(2);
    expect(partly.suspect).toBeNull();
    const first = await encryptSmall(3, 3, 0);
    expect(first.changedChunks).toBe(3);
    expect(first.suspect).toBeNull();
  });
});

describe("encryption alarm: a lying agent", () => {
  it("reporting low entropy for encrypted chunks is still caught by the server's read-back", async () => {
    const user = await signUp(stack);
    const sourceName = uniqueName("liar");
    const clean = Buffer.concat(Array.from({ length: 8 }, (_, i) => textChunk(`liar ${i}`)));
    const full = await backupImage(stack, user.id, clean, { sourceName, entropy: 4 });
    expect(full.backup.suspect).toBeNull();
    const encrypted = Buffer.from(clean);
    createCipheriv("aes-256-ctr", randomBytes(32), randomBytes(16)).update(clean.subarray(0, 7 * CHUNK)).copy(encrypted, 0);
    const { backup } = await backupImage(stack, user.id, encrypted, { sourceName, kind: "INCREMENTAL", parentBackupId: full.backup.id, entropy: 2 });
    expect(backup.suspect).toMatchObject({ changedPercent: 87.5, usualPercent: null, agentEntropy: 2 });
    expect(backup.suspect!.entropy).toBeGreaterThan(7.9);
    expect(backup.suspect!.reason).toMatch(/the agent reported 2 bits\/byte, far below what the server measured/);
    const raised = await waitFor(
      "the alarm",
      async () => {
        const rows = await stack.rt.database.db.select().from(notifications).where(and(eq(notifications.userId, user.id), eq(notifications.kind, "ENCRYPTION_SUSPECTED")));
        return rows.length ? rows : undefined;
      },
      10_000,
    );
    expect(raised).toHaveLength(1);
    await waitForMail(user.email, /Possible ransomware encryption/);
  });
});
