/**
 * The web console (src/console) as a person uses it, in headless Chromium against the real
 * product: API and worker as separate processes sharing Redis, a bootable image backed up with
 * the `reclo` CLI and boot-verified, then log in → restore points → recover (progress watched
 * live, a reload in the middle) → timeline → stop → delete the machine; log out, another user
 * cannot see the recovery, and a revoked session goes back to the login form.
 *
 * Throughout: no token in any URL the page shows or requests, nothing leaves the machine, no
 * console errors or CSP violations. Screenshots land in test-results/console/.
 * Builds dist/console first when it is missing or older than its sources.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import type { Browser, BrowserContext, Page, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReCloClient, GraphQLRequestError } from "../../src/client/graphql-client";
import {
  BackupVerificationDocument,
  InstanceDocument,
  LogOutEverywhereDocument,
  MeDocument,
  RecoveryTimelineDocument,
  StartInstanceDocument,
  StartRecoveryDocument,
  StopInstanceDocument,
  TerminateInstanceDocument,
  VerifyBackupDocument,
} from "../../src/client/generated/graphql";
import express from "express";
import type { AddressInfo } from "node:net";
import { CONSOLE_NOT_BUILT_MESSAGE, consoleRouter, defaultConsoleAssetsDir } from "../../src/console/console.route";
import { makeBootableImage } from "../helpers/boot-image";
import { freePort, root, type Proc } from "../helpers/processes";
import { ensureBundle } from "../helpers/bundle";
import { backupWithCli, productEnv, startApi, startProduct } from "../helpers/product";
import { qemuProcesses } from "../helpers/qemu";
import { createAccount, PASSWORD, uniqueName } from "../helpers/stack";
import { openSubscription, withTimeout } from "../helpers/ws";

const MARKER = "RECLO-CONSOLE-BOOTED";
const MiB = 1024 * 1024;
const SOURCE = "office-fileserver";
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const artifacts = path.join(root, "test-results", "console");

// ---------------------------------------------------------------------------------------------
// Bundle: build when missing or stale (like test/graphiql.test.ts)

const assetsDir = defaultConsoleAssetsDir();

function isLoopback(hostname: string): boolean {
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]" || hostname === "::1";
}

/** What the page-side snippets use (this project type-checks without the DOM lib; casts vanish when compiled). */
interface PageWindow {
  sessionStorage: { getItem(key: string): string | null };
  document: {
    activeElement: { tagName: string; textContent: string | null } | null;
    documentElement: { scrollWidth: number; clientWidth: number };
    getElementById(id: string): { value: number; dataset: Record<string, string | undefined> } | null;
  };
}
type Progress = { value: number };

interface Sample {
  t: number;
  state: string;
  step: number;
  total: number;
}

describe("web console in Chromium: log in → restore points → recover live → machine", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-console-"));
  let env: NodeJS.ProcessEnv;
  let api: Proc;
  let worker: Proc;
  let baseUrl: string;
  let anon: ReCloClient;
  let alice: { email: string; token: string; client: ReCloClient };
  let bob: { email: string; token: string; client: ReCloClient };
  let backupId: string;
  let recoveryId: string;
  let instanceId: string;
  const consoleTokens: string[] = [];

  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const requestUrls: string[] = [];
  const pageUrls: string[] = [];
  const external: string[] = [];
  const consoleErrors: string[] = [];
  const timings: Record<string, number> = {};
  const t0 = Date.now();



  async function screenshot(name: string): Promise<string> {
    fs.mkdirSync(artifacts, { recursive: true });
    const file = path.join(artifacts, name);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`console screenshot: ${path.relative(root, file)}`);
    return file;
  }

  async function signUpUser(prefix: string) {
    const name = uniqueName(prefix);
    const email = `${name}@example.com`;
    const { token } = await createAccount(anon, name);
    return { email, token, client: anon.withToken(token) };
  }

  async function logIn(email: string, password: string) {
    await page.getByLabel("E-mail address").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
  }

  async function sessionToken(): Promise<string | undefined> {
    const raw = await page.evaluate(() => (globalThis as unknown as PageWindow).sessionStorage.getItem("reclo.console.session"));
    return raw ? (JSON.parse(raw) as { token: string }).token : undefined;
  }

  beforeAll(async () => {
    if (!fs.existsSync(chromiumPath)) throw new Error(`Chromium not found at ${chromiumPath}: apt-get install -y chromium, or set CHROMIUM_PATH`);
    const building = ensureBundle({ dir: assetsDir, script: "scripts/build-console.mjs", sources: ["scripts/bundle-lib.mjs", "src/console/client"] }).then((out) => out && console.log(out));

    const port = await freePort();
    // A few seconds of visibly moving progress while the image downloads (~27 MiB at 8 MiB/s).
    env = productEnv({ name: "console", port, dataDir, marker: MARKER }, { LOCAL_IMPORT_RATE_LIMIT: String(8 * MiB) });
    ({ api, worker } = await startProduct(env));
    baseUrl = `http://127.0.0.1:${port}`;
    anon = new ReCloClient({ url: `${baseUrl}/graphql` });
    alice = await signUpUser("console");
    bob = await signUpUser("consoleb");

    // A bootable disk image, backed up with the real CLI.
    const img = path.join(dataDir, "server.img");
    fs.writeFileSync(img, makeBootableImage(3 * 8 * MiB + 3 * MiB, `${MARKER}\r\n`));
    backupId = await backupWithCli({ graphqlUrl: `${baseUrl}/graphql`, token: alice.token, configDir: path.join(dataDir, "cli"), image: img, source: SOURCE });

    // Boot-verify it, so the console has a verification to show.
    const sub = openSubscription(alice.client, BackupVerificationDocument, { backupId });
    await sub.connected;
    await alice.client.request(VerifyBackupDocument, { input: { backupId } });
    await withTimeout(sub.ended, 120_000, "verification to finish");
    expect(sub.results.at(-1)!.data!.backupVerification.status).toBe("VERIFIED");
    await sub.dispose();
    await building;
    timings.setupMs = Date.now() - t0;

    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    // Reduced motion: bars show their value at once, so screenshots show what the test read.
    context = await browser.newContext({ viewport: { width: 1100, height: 900 }, reducedMotion: "reduce" });
    // Nothing may leave the machine: abort (and record) every non-loopback request.
    await context.route("**/*", async (route) => {
      const { protocol, hostname } = new URL(route.request().url());
      if ((protocol === "http:" || protocol === "https:") && !isLoopback(hostname)) {
        external.push(route.request().url());
        await route.abort("blockedbyclient");
        return;
      }
      await route.fallback();
    });
    await context.addInitScript({
      content: `document.addEventListener("securitypolicyviolation", (e) => {
        console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI);
      });`,
    });
    page = await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(msg.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(`pageerror: ${error.message}`));
    page.on("request", (req) => {
      requestUrls.push(req.url());
      const { hostname } = new URL(req.url());
      if (!isLoopback(hostname) && !external.includes(req.url())) external.push(req.url());
    });
    page.on("websocket", (ws) => {
      requestUrls.push(ws.url());
      if (!isLoopback(new URL(ws.url()).hostname)) external.push(ws.url());
    });
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) pageUrls.push(frame.url());
    });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all([api?.kill(), worker?.kill()]);
    for (const pid of qemuProcesses(dataDir)) process.kill(Number(pid), "SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
    console.log(`console test timings: ${JSON.stringify({ ...timings, totalMs: Date.now() - t0 })}`);
  });

  it("serves the console at / with a strict CSP; JSON clients still get the service map", async () => {
    const res = await fetch(`${baseUrl}/`, { headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" } });
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const csp = res.headers.get("content-security-policy") ?? "";
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: http://127.0.0.1:7070;", "connect-src 'self' ws: wss:", "frame-ancestors 'none'"]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    expect(html).not.toMatch(/<style|\sstyle=/); // no inline style

    const refs = [...html.matchAll(/<(?:script|link)\b[^>]*?\s(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs).toHaveLength(3);
    for (const ref of refs) {
      const url = new URL(ref, baseUrl);
      expect(url.origin).toBe(baseUrl);
      expect(url.pathname).toMatch(/^\/console\/assets\/[\w.-]+-[A-Z0-9]{8}\.(js|css|svg)$/);
      const asset = await fetch(url);
      const body = await asset.text();
      expect(asset.status, ref).toBe(200);
      expect(asset.headers.get("cache-control"), ref).toMatch(/max-age=31536000.*immutable/);
      if (url.pathname.endsWith(".js")) {
        // The generated documents travel as query strings: no GraphQL parser in the bundle.
        expect(body).toContain("query ConsoleRestorePoints(");
        expect(body).not.toContain("Syntax Error:");
      }
    }
    const missing = await fetch(`${baseUrl}/console/assets/nope-12345678.js`);
    await missing.text();
    expect(missing.status).toBe(404);

    for (const url of [`${baseUrl}/api`, `${baseUrl}/`]) {
      const json = await fetch(url, { headers: { accept: "application/json" } });
      expect(json.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await json.json()).toMatchObject({ service: "reclo", graphql: "/graphql", graphiql: "/graphiql" });
    }
    const graphiql = await fetch(`${baseUrl}/graphiql`);
    await graphiql.text();
    expect([200, 503]).toContain(graphiql.status); // the GraphiQL route still answers (503 only if that bundle is not built)
  });

  it("answers 503 with a clear message when the console is not built (JSON clients unaffected)", async () => {
    const app = express().use(consoleRouter(path.join(dataDir, "no-console-here"), { service: "reclo" }));
    const server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const p of ["/", "/console/assets/app-12345678.js"]) {
        const res = await fetch(`${url}${p}`);
        expect(res.status, p).toBe(503);
        expect(res.headers.get("content-type"), p).toMatch(/^text\/plain/);
        expect((await res.text()).trim(), p).toBe(CONSOLE_NOT_BUILT_MESSAGE);
      }
      const json = await fetch(`${url}/`, { headers: { accept: "application/json" } });
      expect(await json.json()).toEqual({ service: "reclo" });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("a wrong password shows an error; the right one logs in and shows the restore points", async () => {
    await page.goto(`${baseUrl}/`);
    await expect.poll(() => page.title()).toBe("Log in to ReClo · ReClo");
    await logIn(alice.email, "not the password at all");
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("don't match");
    expect(await sessionToken()).toBeUndefined();

    await logIn(alice.email, PASSWORD);
    await page.getByRole("heading", { level: 1, name: "Restore points" }).waitFor();
    const token = await sessionToken();
    expect(token).toMatch(/^rcl_/);
    consoleTokens.push(token!);
    // Focus moved to the new page's heading.
    expect(await page.evaluate(() => (globalThis as unknown as PageWindow).document.activeElement?.tagName)).toBe("H1");
  });

  it("lists the backup under its server with its verification status", async () => {
    const section = page.getByRole("region", { name: `Server ${SOURCE}` });
    await section.waitFor();
    const card = section.locator(`[data-backup-id="${backupId}"]`);
    await expect.poll(() => card.textContent()).toContain("Full backup");
    const text = (await card.textContent()) ?? "";
    expect(text).toMatch(/Verified: it started up in \d+ s \(serial marker\)/);
    // The evidence in words: what was seen, and what was not (no prompt on this boot sector's screen).
    const saw = card.getByText(/What the check saw \(\d+\)/);
    await saw.click();
    const items = card.locator(".evidence li");
    expect(await items.allTextContents()).toEqual(
      expect.arrayContaining([expect.stringMatching(new RegExp(`Seen: Serial marker: "${MARKER}" seen on the serial console`)), expect.stringMatching(/Not seen: Screen: /)]),
    );
    expect(text).toContain("Latest");
    expect(text).toContain("Complete");
    expect(await card.getByRole("button", { name: "Recover…" }).isEnabled()).toBe(true);
    // The screen the check saw, straight from the object store (the CSP allows its origin, nothing else).
    const shot = card.getByRole("img", { name: new RegExp(`The screen of ${SOURCE} during the start-up check`) });
    await expect.poll(() => shot.evaluate((el) => (el as unknown as { complete: boolean; naturalWidth: number }).complete && (el as unknown as { naturalWidth: number }).naturalWidth), { timeout: 10_000 }).toBeGreaterThan(100);
    expect(new URL((await shot.getAttribute("src"))!).origin).toBe("http://127.0.0.1:7070");
    await screenshot("restore-points.png");
  });

  it("starts a recovery and shows its progress live until COMPLETED at 100 %, surviving a reload", async () => {
    await page.getByRole("button", { name: "Recover…" }).click();
    const dialog = page.getByRole("dialog", { name: `Recover ${SOURCE}?` });
    await dialog.waitFor();
    // This server recovers only locally: no choice to make, and the dialog says where it will run.
    expect(await dialog.textContent()).toContain("The machine will run on the local recovery host.");
    expect(await dialog.getByRole("radio").count()).toBe(0);
    const started = Date.now();
    await dialog.getByRole("button", { name: "Start recovery" }).click();
    await page.waitForURL(/#\/recoveries\/[\w-]+$/);
    recoveryId = decodeURIComponent(new URL(page.url()).hash.replace("#/recoveries/", ""));

    // Read the two progress bars as they change (what a sighted person sees, and what assistive
    // technology reads: native <progress> elements with labels).
    const samples: Sample[] = [];
    let reloaded = false;
    let midShot = false;
    // From CHECKING until after the end, the console's re-reads of the recovery fail (a dependency
    // briefly unavailable): once it has ended no step change refreshes it, so only the console's own
    // retry brings the timeline and the check's screenshot (the next test looks for both).
    let failRefreshes = false;
    let refreshesFailed = 0;
    const failing = async (route: Route) => {
      const body = route.request().postDataJSON() as { query?: string } | null;
      if (!failRefreshes || !body?.query?.includes("query ConsoleRecovery(")) return route.fallback();
      refreshesFailed++;
      await route.fulfill({
        status: 503,
        headers: { "content-type": "application/json", "retry-after": "1" },
        body: JSON.stringify({ errors: [{ message: "The database is unavailable", extensions: { code: "UNAVAILABLE", dependency: "DATABASE", retryAfter: 1 } }] }),
      });
    };
    await page.route("**/graphql", failing);
    const errorsBefore = consoleErrors.length;
    const deadline = Date.now() + 180_000;
    for (;;) {
      expect(Date.now(), `recovery did not finish; last sample ${JSON.stringify(samples.at(-1))}`).toBeLessThan(deadline);
      let sample: Sample | undefined;
      try {
        sample = await page.evaluate(() => {
          const { document } = globalThis as unknown as PageWindow;
          const total = document.getElementById("total-progress");
          const step = document.getElementById("step-progress");
          const state = document.getElementById("recovery-state")?.dataset.state;
          return total && step && state ? { t: Date.now(), state, step: step.value, total: total.value } : undefined;
        });
      } catch {
        sample = undefined; // navigating (the reload)
      }
      if (sample && (samples.at(-1)?.total !== sample.total || samples.at(-1)?.state !== sample.state || samples.at(-1)?.step !== sample.step)) samples.push(sample);
      if (sample?.state === "IMPORTING" && sample.step > 5 && !midShot) {
        midShot = true;
        await screenshot("recovery-progress.png");
      }
      // Reload once in the middle: still logged in, re-attached to the running recovery.
      if (sample?.state === "IMPORTING" && sample.step > 10 && !reloaded) {
        reloaded = true;
        await page.reload();
        await page.getByRole("progressbar", { name: "Overall progress" }).waitFor();
        expect(page.url()).toContain(`#/recoveries/${recoveryId}`);
      }
      if (sample?.state === "CHECKING" && reloaded) failRefreshes = true;
      if (sample && ["COMPLETED", "FAILED", "CANCELLED"].includes(sample.state)) break;
      await page.waitForTimeout(40);
    }
    // Still failing a moment after the end, then answered again.
    await expect.poll(() => refreshesFailed, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    failRefreshes = false;
    await page.unroute("**/graphql", failing);
    // The browser reports each refused request on its console: those, and nothing else.
    await expect.poll(() => consoleErrors.slice(errorsBefore).filter((e) => /status of 503/.test(e)).length).toBe(refreshesFailed);
    expect(consoleErrors.slice(errorsBefore).filter((e) => !/status of 503/.test(e))).toEqual([]);
    consoleErrors.splice(errorsBefore);
    timings.recoveryInBrowserMs = Date.now() - started;
    const last = samples.at(-1)!;
    expect(last.state, JSON.stringify(samples)).toBe("COMPLETED");
    expect(last.total).toBe(100);
    expect(last.step).toBe(100);
    expect(reloaded).toBe(true);
    const totals = samples.map((s) => s.total);
    for (let i = 1; i < totals.length; i++) expect(totals[i]!, JSON.stringify(samples)).toBeGreaterThanOrEqual(totals[i - 1]!);
    expect(new Set(totals).size, JSON.stringify(samples)).toBeGreaterThanOrEqual(3);
    // The current step's bar moved too, within one step.
    expect(new Set(samples.filter((s) => s.state === "IMPORTING").map((s) => s.step)).size).toBeGreaterThanOrEqual(3);
    const states = samples.map((s) => s.state).filter((s, i, all) => s !== all[i - 1]);
    expect(states).toContain("IMPORTING");
    expect(states).toContain("LAUNCHING");
    expect(states).toContain("CHECKING");
    expect(states.indexOf("CHECKING")).toBeGreaterThan(states.indexOf("LAUNCHING"));
    console.log(`progress seen in the browser: ${samples.length} changes, totals ${[...new Set(totals)].join(" ")}`);

    // The accessible names and values screen readers get.
    const overall = page.getByRole("progressbar", { name: "Overall progress" });
    expect(await overall.evaluate((el) => (el as unknown as Progress).value)).toBe(100);
    await page.getByRole("heading", { level: 1, name: `${SOURCE} is back` }).waitFor();
    expect(await page.locator("#announcer").getAttribute("aria-live")).toBe("polite");
    // The session survived the reload: same token.
    expect(await sessionToken()).toBe(consoleTokens[0]);
  }, 240_000);

  it("shows the step list and the event timeline, and the machine with its address", async () => {
    const steps = page.getByRole("list", { name: "Steps" }).getByRole("listitem");
    expect(await steps.allTextContents()).toEqual([
      "✓1. Getting the backup ready (done)",
      "✓2. Building the machine's disk (done)",
      "✓3. Starting the machine (done)",
      "✓4. Checking it started (done)",
      "✓5. Done (done)",
    ]);
    // The check's verdict and what it saw, in words (the boot sector proves itself by its serial marker).
    const check = page.getByRole("region", { name: "Checking it started" });
    await expect.poll(() => check.textContent()).toContain("It started.");
    expect(await check.textContent()).toMatch(/Measured recovery time \(from pressing Recover to the first sign it was up\): \d/);
    expect(await check.textContent()).toMatch(/Boot marker \(seen\): "RECLO-CONSOLE-BOOTED" seen on the serial console/);
    // The screenshot comes with the recovery as the console reads it after the check's last change.
    await expect.poll(() => check.locator("img").count()).toBe(1);
    const timeline = page.locator(".timeline");
    await expect.poll(() => timeline.textContent()).toContain("Starting the machine: finished");
    const text = (await timeline.textContent()) ?? "";
    for (const step of ["Getting the backup ready: started", "Getting the backup ready: finished", "Building the machine's disk: started", "Building the machine's disk: finished", "Starting the machine: started"]) {
      expect(text).toContain(step);
    }
    const { recovery } = await alice.client.request(RecoveryTimelineDocument, { id: recoveryId });
    expect(recovery.state).toBe("COMPLETED");
    instanceId = recovery.instance!.id;
    const panel = page.getByRole("region", { name: "Your recovered machine" });
    await expect.poll(() => panel.textContent(), { timeout: 10_000 }).toContain("Running");
    expect(await panel.textContent()).toContain(recovery.instance!.address!);
    await screenshot("recovery-completed.png");
  });

  it("a reload after completion keeps you logged in and shows the finished recovery", async () => {
    await page.reload();
    await page.getByRole("heading", { level: 1, name: `${SOURCE} is back` }).waitFor();
    expect(await page.getByRole("progressbar", { name: "Overall progress" }).evaluate((el) => (el as unknown as Progress).value)).toBe(100);
    // A phone-sized window: everything fits, nothing scrolls sideways.
    await page.setViewportSize({ width: 360, height: 800 });
    expect(await page.evaluate(() => {
      const { documentElement } = (globalThis as unknown as PageWindow).document;
      return documentElement.scrollWidth <= documentElement.clientWidth;
    })).toBe(true);
    await screenshot("recovery-narrow.png");
    await page.setViewportSize({ width: 1100, height: 900 });
  });

  it("stops the machine from the console: STOPPED, and no QEMU left running", async () => {
    expect(qemuProcesses(dataDir)).toHaveLength(1);
    const panel = page.getByRole("region", { name: "Your recovered machine" });
    await panel.getByRole("button", { name: "Stop machine" }).click();
    await expect.poll(() => panel.locator(".instance-state").textContent(), { timeout: 60_000 }).toContain("Stopped");
    expect((await alice.client.request(InstanceDocument, { id: instanceId })).instance.state).toBe("STOPPED");
    expect(qemuProcesses(dataDir)).toHaveLength(0);
    expect(await panel.getByRole("button", { name: "Start machine" }).isVisible()).toBe(true);
  }, 90_000);

  it("follows the machine live when it is started and stopped elsewhere (CLI, another tab)", async () => {
    const panel = page.getByRole("region", { name: "Your recovered machine" });
    await alice.client.request(StartInstanceDocument, { id: instanceId });
    await expect.poll(() => panel.locator(".instance-state").textContent(), { timeout: 30_000 }).toContain("Running");
    expect(await panel.getByRole("button", { name: "Stop machine" }).isVisible()).toBe(true);
    await alice.client.request(StopInstanceDocument, { id: instanceId });
    await expect.poll(() => panel.locator(".instance-state").textContent(), { timeout: 30_000 }).toContain("Stopped");
    expect(await panel.getByRole("button", { name: "Start machine" }).isVisible()).toBe(true);
    expect(qemuProcesses(dataDir)).toHaveLength(0);
  }, 90_000);

  it("deletes (terminates) it only after confirming", async () => {
    const panel = page.getByRole("region", { name: "Your recovered machine" });
    await panel.getByRole("button", { name: "Delete machine…" }).click();
    let dialog = page.getByRole("dialog", { name: /Delete .* for good\?/ });
    await dialog.waitFor();
    // The safe choice has the focus; "Keep it" changes nothing.
    expect(await page.evaluate(() => (globalThis as unknown as PageWindow).document.activeElement?.textContent)).toBe("Keep it");
    await dialog.getByRole("button", { name: "Keep it" }).click();
    await dialog.waitFor({ state: "detached" });
    expect((await alice.client.request(InstanceDocument, { id: instanceId })).instance.state).toBe("STOPPED");

    await panel.getByRole("button", { name: "Delete machine…" }).click();
    dialog = page.getByRole("dialog", { name: /Delete .* for good\?/ });
    await dialog.getByRole("button", { name: "Delete machine" }).click();
    await expect.poll(() => panel.locator(".instance-state").textContent(), { timeout: 60_000 }).toContain("Deleted");
    expect((await alice.client.request(InstanceDocument, { id: instanceId })).instance.state).toBe("TERMINATED");
    expect(qemuProcesses(dataDir)).toHaveLength(0);

    // The machines page agrees.
    await page.getByRole("link", { name: "Machines" }).click();
    await page.getByRole("heading", { level: 1, name: "Machines" }).waitFor();
    await expect.poll(() => page.getByRole("heading", { name: "In use (0)" }).count()).toBe(1);
    await page.getByRole("link", { name: "Recoveries" }).click();
    await expect.poll(() => page.locator(`[data-recovery-id="${recoveryId}"]`).textContent()).toContain("Finished");
  }, 90_000);

  it("shows 'reconnecting…' while the API is down, then picks the recovery up where it is", async () => {
    const { startRecovery } = await alice.client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } });
    // The restore points page points at the running recovery; following the link attaches to it.
    await page.getByRole("link", { name: "Restore points" }).click();
    const socket = page.waitForEvent("websocket");
    await page.getByRole("link", { name: `Watch the recovery of ${SOURCE}` }).click();
    await page.waitForURL(`${baseUrl}/#/recoveries/${startRecovery.id}`);
    await page.getByRole("progressbar", { name: "Overall progress" }).waitFor();
    await (await socket).waitForEvent("framereceived", { predicate: (f) => String(f.payload).includes('"next"') });

    // The API crashes (the worker keeps recovering): the page says so, in words.
    const before = consoleErrors.length;
    await api.kill("SIGKILL");
    const banner = page.getByRole("status").filter({ hasText: "reconnecting" });
    await banner.waitFor({ timeout: 15_000 });
    await screenshot("reconnecting.png");
    api = await startApi(env);
    await banner.waitFor({ state: "hidden", timeout: 30_000 });
    await expect.poll(() => page.locator("#recovery-state").getAttribute("data-state"), { timeout: 120_000 }).toBe("COMPLETED");
    expect(await page.getByRole("progressbar", { name: "Overall progress" }).evaluate((el) => (el as unknown as Progress).value)).toBe(100);
    await page.getByRole("region", { name: "Your recovered machine" }).waitFor({ timeout: 10_000 });
    // Allowed while the API was down: Chromium's notes about the failed connection attempts.
    expect(consoleErrors.slice(before).filter((e) => !/WebSocket connection to .* failed|Failed to load resource: net::ERR_/.test(e))).toEqual([]);
    consoleErrors.splice(before);

    const { recovery } = await alice.client.request(RecoveryTimelineDocument, { id: startRecovery.id });
    await alice.client.request(TerminateInstanceDocument, { id: recovery.instance!.id });
    expect(qemuProcesses(dataDir)).toHaveLength(0);
  }, 240_000);

  it("log out forgets and revokes the token; another user's recovery is 'not found'", async () => {
    const aliceToken = (await sessionToken())!;
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { level: 1, name: "Log in to ReClo" }).waitFor();
    expect(await page.getByRole("status").filter({ hasText: "You have logged out." }).count()).toBe(1);
    expect(await sessionToken()).toBeUndefined();
    const err = await anon
      .withToken(aliceToken)
      .request(MeDocument, {})
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphQLRequestError);
    expect((err as GraphQLRequestError).code).toBe("UNAUTHENTICATED");

    await logIn(bob.email, PASSWORD);
    await page.getByRole("heading", { level: 1, name: "Restore points" }).waitFor();
    consoleTokens.push((await sessionToken())!);
    await page.goto(`${baseUrl}/#/recoveries/${recoveryId}`);
    await page.getByRole("heading", { level: 1, name: "Recovery not found" }).waitFor();
    const body = (await page.locator("main").textContent()) ?? "";
    expect(body).toContain("not found");
    expect(body).not.toContain(SOURCE);
  });

  it("a session revoked elsewhere sends you back to the login form with a clear message", async () => {
    const before = consoleErrors.length;
    await bob.client.request(LogOutEverywhereDocument, {});
    await page.getByRole("link", { name: "Machines" }).click();
    await page.getByText("Your session has ended, please log in again.").waitFor();
    await page.getByRole("heading", { level: 1, name: "Log in to ReClo" }).waitFor();
    expect(await sessionToken()).toBeUndefined();
    // The only console error allowed: Chromium's own note about the 401 answer.
    expect(consoleErrors.slice(before).filter((e) => !/status of 401/.test(e))).toEqual([]);
    consoleErrors.splice(before);
  });

  it("never put a token in a URL, never left the machine, no console errors", () => {
    expect(consoleTokens).toHaveLength(2);
    const secrets = [...consoleTokens, alice.token, bob.token];
    for (const url of [...requestUrls, ...pageUrls]) {
      for (const secret of secrets) expect(url).not.toContain(secret);
      expect(url).not.toMatch(/token|rcl_/i);
    }
    expect(requestUrls.some((u) => u.startsWith("ws://"))).toBe(true); // progress came over graphql-ws
    expect(external).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});
