import type { ChildProcess } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { GraphQLRequestError, ReCloClient } from "../../src/client/graphql-client";
import { BackupDocument, MeDocument, SourceDocument } from "../../src/client/generated/graphql";
import { killChildren, spawnCli } from "../helpers/cli";
import { cliSourceEnv } from "../helpers/processes";
import { PASSWORD, signUp, startStack, uniqueName, type TestStack, type TestUser } from "../helpers/stack";

const MiB = 1024 * 1024;
const CHUNK = 8 * MiB;

let stack: TestStack;
let tmp: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  stack = await startStack();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-"));
});

afterEach(() => {
  killChildren(children);
});

afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});


function cliEnv(configDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // The sources, even when a (possibly stale) dist/ build exists.
  const env: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: configDir, RECLO_URL: stack.app.graphqlUrl, ...extra };
  for (const k of ["RECLO_TOKEN", "RECLO_PASSWORD", "RECLO_UPLOAD_DELAY_MS", "RECLO_RETRY_SECONDS", "XDG_CONFIG_HOME"]) if (!(k in extra)) delete env[k];
  return env;
}

/** Spawns `node bin/reclo.js …`; `onLine` sees stdout lines as they come (and may kill the child). */

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function sha256(buf: Uint8Array): string {
  return createHash("sha256").update(buf).digest("hex");
}

describe("reclo login / whoami / logout", () => {
  let user: TestUser;
  let dir: string;

  beforeAll(async () => {
    user = await signUp(stack);
    dir = path.join(tmp, "login-config");
  });

  it("prints usage for --help and exits 2 for an unknown command or option", async () => {
    const help = await spawnCli(children, ["--help"], { env: cliEnv(dir) });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: reclo <command>/);
    const backupHelp = await spawnCli(children, ["backup", "--help"], { env: cliEnv(dir) });
    expect(backupHelp.code).toBe(0);
    expect(backupHelp.stdout).toMatch(/--incremental/);
    const unknown = await spawnCli(children, ["frobnicate"], { env: cliEnv(dir) });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"[\s\S]*Usage:/);
    const badFlag = await spawnCli(children, ["whoami", "--nope"], { env: cliEnv(dir) });
    expect(badFlag.code).toBe(2);
  });

  it("logs in with RECLO_PASSWORD and with the password on stdin; whoami; logout revokes the token", async () => {
    const viaEnv = await spawnCli(children, ["login", "--email", user.email], { env: cliEnv(dir, { RECLO_PASSWORD: PASSWORD }) });
    expect(viaEnv.stderr).toBe("");
    expect(viaEnv.code).toBe(0);
    expect(viaEnv.stdout).toMatch(new RegExp(`^Logged in as ${user.email} \\(token expires \\d{4}-\\d\\d-\\d\\d .*\\)\\n$`));
    const file = path.join(dir, "config.json");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const first = JSON.parse(fs.readFileSync(file, "utf8")) as { url: string; token: string; email: string; expiresAt: string };
    expect(first).toMatchObject({ url: stack.app.graphqlUrl, email: user.email });
    expect(first.token).toMatch(/^rcl_/);
    expect(Date.parse(first.expiresAt)).toBeGreaterThan(Date.now());

    const viaStdin = await spawnCli(children, ["login", "--email", user.email], { env: cliEnv(dir), input: `${PASSWORD}\n` });
    expect(viaStdin.code).toBe(0);
    expect(viaStdin.stdout).toMatch(/^Logged in as /);
    const saved = JSON.parse(fs.readFileSync(file, "utf8")) as { token: string };
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(saved.token).toMatch(/^rcl_/);
    expect(saved.token).not.toBe(first.token);

    const who = await spawnCli(children, ["whoami"], { env: cliEnv(dir) });
    expect(who.code).toBe(0);
    expect(who.stdout).toContain(user.email);
    expect(who.stdout).toContain(user.username);

    const wrong = await spawnCli(children, ["login", "--email", user.email], { env: cliEnv(path.join(tmp, "wrong-config"), { RECLO_PASSWORD: "not the password at all" }) });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^reclo: Login failed: /);

    const out = await spawnCli(children, ["logout"], { env: cliEnv(dir) });
    expect(out.code).toBe(0);
    const after = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    expect(after.token).toBeUndefined();
    expect(after.email).toBe(user.email);

    const whoAfter = await spawnCli(children, ["whoami"], { env: cliEnv(dir) });
    expect(whoAfter.code).toBe(1);
    expect(whoAfter.stderr).toBe("reclo: Not logged in: run `reclo login`\n");

    // The server no longer accepts the logged-out token; a revoked RECLO_TOKEN gets one readable line too.
    const err = await new ReCloClient({ url: stack.app.graphqlUrl, token: saved.token }).request(MeDocument).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphQLRequestError);
    expect((err as GraphQLRequestError).code).toBe("UNAUTHENTICATED");
    const envToken = await spawnCli(children, ["whoami"], { env: cliEnv(dir, { RECLO_TOKEN: saved.token }) });
    expect(envToken.code).toBe(1);
    expect(envToken.stderr).toMatch(/^reclo: Not logged in: RECLO_TOKEN .*\n$/);
    // The token from the first login is still a session of its own.
    expect((await new ReCloClient({ url: stack.app.graphqlUrl, token: first.token }).request(MeDocument)).me.email).toBe(user.email);
  });

  it("says so in one line when the server cannot be reached", async () => {
    // A port nothing listens on: bind an ephemeral one, then free it.
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((resolve) => srv.close(resolve));
    const url = `http://127.0.0.1:${port}/graphql`;
    // RECLO_RETRY_SECONDS=0: no retries (test/e2e/cli-outages.test.ts covers them).
    const r = await spawnCli(children, ["whoami", "--url", url], { env: cliEnv(dir, { RECLO_TOKEN: "rcl_x", RECLO_RETRY_SECONDS: "0" }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`reclo: Cannot reach the ReClo server at ${url}: ECONNREFUSED\n`);
  });
});

describe("reclo backup / backups", () => {
  let user: TestUser;
  let dir: string;

  beforeAll(async () => {
    user = await signUp(stack);
    dir = path.join(tmp, "backup-config");
    const r = await spawnCli(children, ["login", "--email", user.email], { env: cliEnv(dir, { RECLO_PASSWORD: PASSWORD }) });
    expect(r.code).toBe(0);
  });

  it("backs an image up with --json and lists it with backups", async () => {
    const image = path.join(tmp, "small.img");
    const body = randomFillSync(Buffer.alloc(2 * CHUNK + 4 * MiB));
    fs.writeFileSync(image, body);
    const source = uniqueName("S");
    const r = await spawnCli(children, ["backup", image, "--json", "--source", source], { env: cliEnv(dir) });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const events = jsonLines(r.stdout);
    expect(events[0]).toMatchObject({ event: "start", kind: "FULL", imageSize: body.length, chunkSize: CHUNK, chunkCount: 3, resumed: false });
    const done = events.at(-1)!;
    expect(done).toMatchObject({ event: "done", backupId: events[0]!.backupId, kind: "FULL", status: "COMPLETED", uploadedBytes: body.length, sha256: sha256(body) });
    expect(typeof done.seconds).toBe("number");
    expect(events.filter((e) => e.event === "chunk-uploaded")).toHaveLength(3);
    for (const p of events.filter((e) => e.event === "progress")) expect(p).toEqual(expect.objectContaining({ hashedBytes: expect.any(Number), sentBytes: expect.any(Number), rateBytesPerSec: expect.any(Number) }));

    const list = await spawnCli(children, ["backups", "--json", "--source", source], { env: cliEnv(dir) });
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as { id: string; status: string; sourceName: string; sha256: string }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: done.backupId, status: "COMPLETED", sourceName: source, sha256: sha256(body) });

    const table = await spawnCli(children, ["backups", "--limit", "5"], { env: cliEnv(dir) });
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+KIND\s+STATUS\s+SOURCE\s+SIZE\s+SENT\s+CREATED\s+BOOT CHECK$/);
    // Never checked: the table says so (never "verified" without evidence).
    expect(table.stdout).toMatch(new RegExp(`${done.backupId}.*not verified`));
    expect(table.stdout).toContain(String(done.backupId));

    // A second run the same week is an incremental with nothing to send.
    const again = jsonLines((await spawnCli(children, ["backup", image, "--json", "--source", source], { env: cliEnv(dir) })).stdout);
    expect(again.at(-1)).toMatchObject({ event: "done", kind: "INCREMENTAL", status: "COMPLETED", uploadedBytes: 0, sentBytes: 0, chunksAlreadyStored: 3 });

    const missing = await spawnCli(children, ["backup", path.join(tmp, "nope.img"), "--json"], { env: cliEnv(dir) });
    expect(missing.code).toBe(1);
    expect(jsonLines(missing.stdout).at(-1)).toMatchObject({ event: "error", code: "IMAGE_NOT_FOUND" });
    const usage = await spawnCli(children, ["backup", image, "--full", "--incremental"], { env: cliEnv(dir) });
    expect(usage.code).toBe(2);
    fs.rmSync(image);
  });

  it("resumes a killed backup without re-sending the chunks already stored", async () => {
    // 10 chunks (the last one short), chunk 6 all zero.
    const size = 9 * CHUNK + 2 * MiB;
    const image = path.join(tmp, "resume.img");
    const body = randomFillSync(Buffer.alloc(size));
    body.fill(0, 6 * CHUNK, 7 * CHUNK);
    fs.writeFileSync(image, body);
    const chunks = Array.from({ length: 10 }, (_, i) => body.subarray(i * CHUNK, Math.min(size, (i + 1) * CHUNK)));
    const nonZero = chunks.filter((_, i) => i !== 6);
    const nonZeroBytes = nonZero.reduce((n, c) => n + c.length, 0);
    const source = uniqueName("R");
    const args = ["backup", image, "--json", "--source", source, "--concurrency", "1"];

    let killedAfter: Record<string, unknown> | null = null;
    const first = await spawnCli(children, args, {
      env: cliEnv(dir, { RECLO_UPLOAD_DELAY_MS: "300" }),
      onLine: (line, child) => {
        const e = JSON.parse(line) as Record<string, unknown>;
        if (e.event === "chunk-uploaded" && !killedAfter) {
          killedAfter = e;
          child.kill("SIGKILL");
        }
      },
    });
    expect(first.signal).toBe("SIGKILL");
    expect(killedAfter).not.toBeNull();
    const firstStart = jsonLines(first.stdout.slice(0, first.stdout.lastIndexOf("\n") + 1))[0]!;
    expect(firstStart).toMatchObject({ event: "start", resumed: false, chunkCount: 10 });
    expect(fs.readdirSync(path.join(dir, "state"))).toHaveLength(1);

    // What the killed run left in the store.
    const heads = await stack.rt.services.chunks.headChunks(user.id, nonZero.map(sha256));
    const storedBytes = nonZero.filter((c) => heads.get(sha256(c))?.size === c.length).reduce((n, c) => n + c.length, 0);
    expect(storedBytes).toBeGreaterThanOrEqual(CHUNK);
    expect(storedBytes).toBeLessThan(nonZeroBytes);

    const second = await spawnCli(children, args, { env: cliEnv(dir) });
    expect(second.stderr).toBe("");
    expect(second.code).toBe(0);
    const events = jsonLines(second.stdout);
    expect(events.find((e) => e.event === "info")).toMatchObject({ message: `resuming backup ${String(firstStart.backupId)}` });
    expect(events.find((e) => e.event === "start")).toMatchObject({ backupId: firstStart.backupId, resumed: true });
    const done = events.at(-1)!;
    expect(done).toMatchObject({ event: "done", backupId: firstStart.backupId, status: "COMPLETED", sha256: sha256(body), resumed: true, zeroChunks: 1 });
    expect(done.sentBytes).toBe(nonZeroBytes - storedBytes);
    expect(done.uploadedBytes).toBe(nonZeroBytes); // over both runs
    const { backup } = await user.client.request(BackupDocument, { id: String(firstStart.backupId) });
    expect(backup).toMatchObject({ status: "COMPLETED", sha256: sha256(body) });
    expect(fs.readdirSync(path.join(dir, "state"))).toEqual([]);
    fs.rmSync(image);
  });

  it("agent: checks in, logs the server's schedule as JSON lines and stops cleanly on SIGTERM", async () => {
    const image = path.join(tmp, "agent.img");
    fs.writeFileSync(image, Buffer.alloc(1024, 7));
    const source = uniqueName("A");
    const run = await spawnCli(children, ["agent", "--image", image, "--source", source], {
      env: cliEnv(dir),
      onLine: (line, child) => {
        if ((JSON.parse(line) as { event: string }).event === "scheduled") child.kill("SIGTERM");
      },
    });
    expect(run.code).toBe(0);
    const lines = jsonLines(run.stdout);
    expect(lines.map((l) => l.event)).toEqual(["agent-start", "scheduled", "agent-stop"]);
    // A new source: the default schedule (daily 02:00, FULL on Sunday) in the agent's own zone, and no backup yet: FULL.
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    expect(lines[1]).toMatchObject({ kind: "FULL", reason: "NO_COMPLETED_BACKUP", schedule: { fullEvery: "SUNDAY", incrementalAt: "02:00", timezone: zone, graceMinutes: 60 } });
    const { source: recorded } = await user.client.request(SourceDocument, { name: source });
    expect(recorded).toMatchObject({ name: source, schedule: { timezone: zone }, nextBackup: { at: lines[1]!.at, kind: "FULL" } });
    expect(Date.now() - Date.parse(String(recorded!.lastSeenAt))).toBeLessThan(60_000);
    // The schedule is the server's: the old local flags are gone.
    const bad = await spawnCli(children, ["agent", "--image", image, "--at", "25:00"], { env: cliEnv(dir) });
    expect(bad.code).toBe(2);
    fs.rmSync(image);
  });
});
