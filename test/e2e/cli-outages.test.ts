import type { ChildProcess } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BackupDocument } from "../../src/client/generated/graphql";
import { signUp, startStack, uniqueName, type TestStack, type TestUser } from "../helpers/stack";
import { cuttableProxy, type CuttableProxy } from "../helpers/proxy";
import { killChildren, spawnCli } from "../helpers/cli";
import { cliSourceEnv } from "../helpers/processes";

/**
 * `reclo backup` while the object store is down (a TCP proxy in front of the real versitygw, cut):
 * the CLI retries the server's UNAVAILABLE answers (and its own PUTs) within RECLO_RETRY_SECONDS;
 * restored in time, the backup completes; cut for longer, it exits non-zero saying what is down and
 * that the same command resumes, which it then does.
 */

const MiB = 1024 * 1024;
const CHUNK = 8 * MiB;

let proxy: CuttableProxy;
let stack: TestStack;
let user: TestUser;
let tmp: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  proxy = await cuttableProxy(7070);
  stack = await startStack({ S3_ENDPOINT: `http://127.0.0.1:${proxy.port}` });
  user = await signUp(stack);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-outage-"));
});

afterEach(async () => {
  killChildren(children);
  await proxy.restore().catch(() => undefined);
});

afterAll(async () => {
  await stack?.stop();
  await proxy?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});


function cliEnv(configDir: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: configDir, RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: user.token, ...extra };
  for (const k of ["RECLO_PASSWORD", "RECLO_UPLOAD_DELAY_MS", "XDG_CONFIG_HOME"]) if (!(k in extra)) delete env[k];
  return env;
}


const jsonLines = (stdout: string) =>
  stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const cli = (args: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void) => spawnCli(children, args, { env, onLine });

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function image(name: string): { file: string; body: Buffer } {
  const file = path.join(tmp, name);
  const body = randomFillSync(Buffer.alloc(2 * CHUNK + MiB));
  fs.writeFileSync(file, body);
  return { file, body };
}

async function storeKnownDown(): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const body = (await (await fetch(`${stack.app.url}/readyz`)).json()) as { checks: Record<string, { ok: boolean }> };
    if (body.checks.s3?.ok === false) return;
    if (Date.now() > deadline) throw new Error("readyz never reported the store down");
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("reclo backup while the object store is down", () => {
  it("retries, and completes once the store is back", async () => {
    const { file, body } = image("restored.img");
    const dir = path.join(tmp, "restored");
    await proxy.cut();
    await storeKnownDown();
    let restored = false;
    const run = await cli(["backup", file, "--json", "--source", uniqueName("O")], cliEnv(dir, { RECLO_RETRY_SECONDS: "60" }), (line) => {
      const e = JSON.parse(line) as { event: string; message?: string };
      // The first retry notice names the store: bring it back while the CLI waits.
      if (!restored && e.event === "info" && /object store is unavailable/i.test(e.message ?? "")) {
        restored = true;
        void proxy.restore();
      }
    });
    expect(restored).toBe(true);
    expect(run.code).toBe(0);
    const events = jsonLines(run.stdout);
    expect(events.find((e) => e.event === "info")).toMatchObject({ message: expect.stringMatching(/object store is unavailable right now; try again in \d+ s; retrying in/) });
    expect(events.at(-1)).toMatchObject({ event: "done", status: "COMPLETED", sha256: sha256(body) });
  });

  it("cut for longer than its retry budget: exits non-zero saying what is down and that the same command resumes; it does", async () => {
    const { file, body } = image("long.img");
    const dir = path.join(tmp, "long");
    const source = uniqueName("L");
    const args = ["backup", file, "--json", "--source", source, "--concurrency", "1"];
    // Cut once the backup exists (so that there is something to resume): its chunk requests or PUTs meet the outage.
    let cutAt = 0;
    const failed = await cli(args, cliEnv(dir, { RECLO_RETRY_SECONDS: "3", RECLO_UPLOAD_DELAY_MS: "200" }), (line) => {
      if (!cutAt && (JSON.parse(line) as { event: string }).event === "start") {
        cutAt = Date.now();
        void proxy.cut();
      }
    });
    expect(cutAt).toBeGreaterThan(0);
    expect(failed.code).toBe(1);
    const events = jsonLines(failed.stdout);
    const error = events.find((e) => e.event === "error")!;
    // The API's UNAVAILABLE (a chunk request) or the CLI's own PUTs to the store, whichever met the outage first.
    expect(["UNAVAILABLE", "UPLOAD_FAILED"]).toContain(error.code);
    expect(error.message).toMatch(/object store is unavailable.*run the same command again once it is back: it resumes where it stopped/);
    expect(failed.stderr).toContain(`reclo: ${String(error.message)}`);
    // Bounded by its retry budget (3 s) or its PUT attempts (5, at most about 10 s apart in all).
    expect(Date.now() - cutAt).toBeLessThan(30_000);
    const backupId = String(events.find((e) => e.event === "start")!.backupId);

    await proxy.restore();
    const again = await cli(args, cliEnv(dir, { RECLO_RETRY_SECONDS: "60" }));
    expect(again.code).toBe(0);
    const resumed = jsonLines(again.stdout);
    expect(resumed.find((e) => e.event === "info")).toMatchObject({ message: `resuming backup ${backupId}` });
    expect(resumed.at(-1)).toMatchObject({ event: "done", backupId, status: "COMPLETED", resumed: true, sha256: sha256(body) });
    const { backup } = await user.client.request(BackupDocument, { id: backupId });
    expect(backup.status).toBe("COMPLETED");
  });

  it("a backup that cannot even be created (its quota check reads the store): the same words", async () => {
    const { file } = image("early.img");
    await proxy.cut();
    await storeKnownDown();
    const failed = await cli(["backup", file, "--json", "--source", uniqueName("E")], cliEnv(path.join(tmp, "early"), { RECLO_RETRY_SECONDS: "2" }));
    expect(failed.code).toBe(1);
    const events = jsonLines(failed.stdout);
    expect(events.some((e) => e.event === "start")).toBe(false);
    expect(events.filter((e) => e.event === "info").length).toBeGreaterThan(0); // the retry notices
    const error = events.find((e) => e.event === "error")!;
    expect(error).toMatchObject({ code: "UNAVAILABLE" });
    expect(error.message).toMatch(/^The server's object store is unavailable right now \(retried for \d+ s\); run the same command again once it is back: it resumes where it stopped$/);
  });

  it("a server that cannot be reached is retried within the budget, then named with the same advice", async () => {
    const srv = net.createServer();
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((resolve) => srv.close(resolve));
    const url = `http://127.0.0.1:${port}/graphql`;
    const r = await cli(["whoami", "--url", url], cliEnv(path.join(tmp, "unreachable"), { RECLO_RETRY_SECONDS: "3" }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/reclo: fetch failed: ECONNREFUSED; retrying in/);
    expect(r.stderr).toMatch(
      new RegExp(`reclo: Cannot reach the ReClo server at ${url.replace(/[.]/g, "\\.")}: ECONNREFUSED \\(retried for \\d+ s\\); run the same command again once it is back: it resumes where it stopped\\n$`),
    );
  });
});
