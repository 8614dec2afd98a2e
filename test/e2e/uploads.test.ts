/**
 * A failed agent upload, as a person sees it: `reclo backup` (a child process, the sources) sends an
 * image slowly; while it runs the console (headless Chromium, in-process API) shows a live bar for
 * that server and `reclo backups --watch --source` prints a line per update; then the image is cut
 * short under the upload, the agent reports why, and the reason shows in `Upload`, in the console
 * (without a reload) and in the watch, which exits 1. Screenshots land in test-results/uploads/.
 */
import type { ChildProcess } from "node:child_process";
import { randomFillSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { UploadDocument } from "../../src/client/generated/graphql";
import { backups, uploads } from "../../src/db/schema";
import { ensureConsoleBundle, openBrowser } from "../helpers/browser";
import { killChildren, spawnCli } from "../helpers/cli";
import { cliSourceEnv, root } from "../helpers/processes";
import { signUp, startStack, uniqueName, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

const CHUNK = 8 * 1024 * 1024;
const artifacts = path.join(root, "test-results", "uploads");

describe("a failed agent upload: its reason in Upload, the console and `reclo backups --watch`", () => {
  let stack: TestStack;
  let alice: TestUser;
  let browser: Browser;
  let page: Page;
  let tmp: string;
  const children = new Set<ChildProcess>();
  const problems: string[] = [];

  beforeAll(async () => {
    await ensureConsoleBundle();
    stack = await startStack();
    alice = await signUp(stack);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-uploads-e2e-"));
    ({ browser, page } = await openBrowser(problems));
  }, 180_000);

  afterAll(async () => {
    killChildren(children);
    await browser?.close();
    await stack?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const cliEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: path.join(tmp, "config"), RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: alice.token, ...extra };
    for (const k of ["RECLO_PASSWORD", "RECLO_UPLOAD_DELAY_MS", "RECLO_RETRY_SECONDS", "XDG_CONFIG_HOME"]) if (!(k in extra)) delete env[k];
    return env;
  };

  it("shows the upload live, then why it failed", async () => {
    const source = uniqueName("office");
    const image = path.join(tmp, "disk.img");
    // 12 chunks at ~0.8 s each: room to look (and to cut the image short) before it would finish.
    fs.writeFileSync(image, randomFillSync(Buffer.alloc(12 * CHUNK)));

    // The watch starts first: the source has no upload yet, so it waits for the next one.
    const watchLines: string[] = [];
    const watch = spawnCli(children, ["backups", "--watch", "--source", source], { env: cliEnv(), onLine: (l) => void watchLines.push(l) });
    // The backup: one chunk PUT at a time, each delayed, so there is time to look.
    const backup = spawnCli(children, ["backup", image, "--json", "--full", "--source", source, "--concurrency", "1"], { env: cliEnv({ RECLO_UPLOAD_DELAY_MS: "800" }) });

    const row = await waitFor(
      "the upload to have sent a chunk",
      async () => {
        const [r] = await stack.rt.database.db.select({ u: uploads }).from(uploads).innerJoin(backups, eq(backups.id, uploads.backupId)).where(eq(backups.sourceName, source));
        return r && r.u.chunksSent >= 1 ? r.u : undefined;
      },
      30_000,
      100,
    );

    // The console: the server's section shows a live bar that moves without a reload.
    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    const panel = page.locator(`.upload-panel[data-source="${source}"]`);
    const bar = panel.locator("progress.upload-bar");
    await bar.waitFor({ timeout: 15_000 });
    expect(await panel.textContent()).toContain("Backing up now");
    const first = Number(await bar.getAttribute("value"));
    await expect.poll(async () => Number(await bar.getAttribute("value")), { timeout: 15_000 }).toBeGreaterThan(first);
    expect(await panel.locator(".upload-facts").textContent()).toMatch(/\d+ % — .* of 101 MB/);
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, "upload-live.png"), fullPage: true });

    // The disk image is cut short under the upload: the agent can no longer read chunk 2 onwards.
    fs.truncateSync(image, CHUNK + 100);
    const b = await backup;
    expect(b.code, b.stderr).toBe(1);
    const errorLine = b.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { event: string; code?: string }).find((e) => e.event === "error");
    expect(errorLine?.code).toBe("IMAGE_CHANGED");

    // In the API: FAILED with the agent's reason.
    const { upload } = await alice.client.request(UploadDocument, { id: row.id });
    expect(upload.status).toBe("FAILED");
    expect(upload.failureReason).toMatch(/^IMAGE_CHANGED: Unexpected end of the image at byte \d+: it shrank while being backed up/);

    // In the console, live: the bar gives way to the reason.
    const failed = panel.locator(".upload-failed");
    await failed.waitFor({ timeout: 15_000 });
    expect(await failed.textContent()).toContain("The last backup of this server failed");
    expect(await failed.locator(".upload-reason").textContent()).toBe(upload.failureReason);
    expect(await bar.count()).toBe(0);
    await page.screenshot({ path: path.join(artifacts, "upload-failed.png"), fullPage: true });

    // The watch printed progress lines (non-TTY: one per update), then the failure, and exits 1.
    const w = await watch;
    expect(w.code, w.stderr).toBe(1);
    const active = watchLines.filter((l) => l.startsWith(`${source}  ACTIVE`));
    expect(active.length).toBeGreaterThan(1);
    const pcts = active.map((l) => Number(/(\d+)%/.exec(l)![1]));
    expect(pcts.at(-1)!).toBeGreaterThan(pcts[0]!);
    expect(watchLines.at(-1)).toMatch(new RegExp(`^${source}  FAILED .*: IMAGE_CHANGED: Unexpected end of the image`));
    expect(w.stderr).toContain(`reclo: the upload of ${source} failed: ${upload.failureReason}`);

    // Following an upload that already ended tells how it ended, at once.
    const again = await spawnCli(children, ["backups", "--watch", "--source", source], { env: cliEnv() });
    expect(again.code).toBe(1);
    expect(again.stdout.trim().split("\n")).toHaveLength(1);
    expect(again.stdout).toContain(upload.failureReason!);
    // Without a source: only uploads in progress are followed, and there are none now.
    const none = await spawnCli(children, ["backups", "--watch"], { env: cliEnv() });
    expect(none).toMatchObject({ code: 0, stdout: "No uploads in progress.\n" });
    expect(problems).toEqual([]);
  }, 120_000);
});
