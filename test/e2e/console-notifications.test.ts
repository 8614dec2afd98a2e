import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { ensureConsoleBundle, openBrowser } from "../helpers/browser";
import { root } from "../helpers/processes";
import { signUp, startStack, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { waitFor } from "../helpers/wait";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { verifyWebhookSignature } from "../../src/alerts/webhook-http";
import { newId } from "../../src/shared/ids";

/**
 * The console's notifications (issue 16) in Chromium against an in-process API and worker: the
 * list with its unread count, a notification arriving live (notificationAdded), marked read; the
 * settings page: add a webhook (its signing secret shown once, and it is the one that signs), send
 * it a test event, see the delivery in its log, remove it — under the console's CSP, nothing
 * leaving the machine.
 */


describe("console: notifications and webhooks (Chromium)", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let alice: TestUser;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(204).end();
    });
  });
  let receiverUrl: string;
  const taskQueue = `test-console-alerts-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    await ensureConsoleBundle();
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/console-hook`;
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    alice = await signUp(stack);
    ({ browser, page } = await openBrowser(problems));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await worker?.shutdown();
    await stack?.stop();
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  it("lists notifications with the unread count, shows a new one live, marks it read", async () => {
    const first = await stack.rt.services.notifications.raise(alice.id, { kind: "VERIFICATION_FAILED", title: "A restore point of fileserver failed its boot verification", body: "It did not boot: kernel panic.", dedupeKey: `console:${newId()}` });
    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("link", { name: "Notifications" }).click();
    const count = page.locator(".unread-count");
    await expect.poll(() => count.textContent()).toBe("1 unread");
    const item = page.locator(`[data-notification-id="${first.notification.id}"]`);
    expect(await item.textContent()).toContain("It did not boot: kernel panic.");

    // Raised while the page is open: it appears without a reload (raised until the live view hears one).
    await waitFor(
      "a notification shown live",
      async () => {
        if ((await page.locator(".notification", { hasText: "The recovery of mail failed" }).count()) > 0) return true;
        await stack.rt.services.notifications.raise(alice.id, { kind: "RECOVERY_FAILED", title: "The recovery of mail failed", body: "The image did not import.", dedupeKey: `console:${newId()}` });
        return false;
      },
      15_000,
      500,
    );
    // The poll above may have raised a second one before the first was heard; every raise has
    // returned by now, so the server's count is final: wait until the page shows all of them.
    const shown = await stack.rt.services.notifications.unreadCount(alice.id);
    expect(shown).toBeGreaterThanOrEqual(2);
    await expect.poll(() => count.textContent()).toBe(`${shown} unread`);
    await expect.poll(() => page.locator(".notification-unread").count()).toBe(shown);
    expect(await page.locator(".notification").first().textContent()).toContain("The recovery of mail failed");
    fs.mkdirSync(path.join(root, "test-results", "console"), { recursive: true });
    await page.screenshot({ path: path.join(root, "test-results", "console", "notifications.png"), fullPage: true });

    await item.getByRole("button", { name: "Mark as read" }).click();
    await expect.poll(() => count.textContent()).toBe(`${shown - 1} unread`);
    await page.getByRole("button", { name: "Mark all as read" }).click();
    await expect.poll(() => count.textContent()).toBe("No unread notifications.");
    expect(await stack.rt.services.notifications.unreadCount(alice.id)).toBe(0);
    expect(problems).toEqual([]);
  });

  it("settings: adds a webhook (secret shown once, and it signs), sends a test event, shows the delivery, removes it", async () => {
    await page.getByRole("link", { name: "Choose what is e-mailed, and add webhooks" }).click();
    await page.getByLabel("Webhook URL").fill(receiverUrl);
    await page.getByRole("button", { name: "Add webhook" }).click();
    const secret = (await page.locator(".signing-secret").textContent({ timeout: 10_000 }))!;
    expect(secret).toMatch(/^whsec_/);
    const hook = page.locator(".webhook", { hasText: receiverUrl });
    await hook.getByRole("button", { name: "Send a test event" }).click();
    await expect.poll(() => hook.locator(".deliveries").textContent()).toMatch(/Delivered \(HTTP 204\), test event, attempt 1/);
    const [post] = received;
    expect(verifyWebhookSignature(secret, String(post!.headers["x-reclo-timestamp"]), post!.body, String(post!.headers["x-reclo-signature"]))).toBe(true);
    // Shown once: after a reload the page has no secret.
    await page.reload();
    await expect.poll(() => page.locator(".webhook", { hasText: receiverUrl }).count()).toBe(1);
    expect(await page.content()).not.toContain(secret);

    // On a phone-sized screen nothing overflows sideways (long URLs wrap).
    await page.setViewportSize({ width: 360, height: 800 });
    const fits = () => page.evaluate(() => {
      const { documentElement } = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return documentElement.scrollWidth <= documentElement.clientWidth;
    });
    expect(await fits()).toBe(true);
    await page.setViewportSize({ width: 1100, height: 900 });

    await page.locator(".webhook", { hasText: receiverUrl }).getByRole("button", { name: "Remove" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await expect.poll(() => page.locator(".webhook").count()).toBe(0);
    expect(await stack.rt.services.webhooks.list(alice.id)).toEqual([]);
    expect(problems).toEqual([]);
  });
});
