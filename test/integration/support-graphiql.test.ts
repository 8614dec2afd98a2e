/**
 * GraphiQL for support (issue 17), in headless Chromium against the real API: the banner shows the
 * signed-in role, the Act-for field makes every HTTP request act for the customer within their
 * grant (the banner then says whose account, which scope and until when), what support reads is in
 * the customer's audit log, and the saved support documents are there as tabs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import type { Browser, Page } from "playwright-core";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { openBrowser } from "../helpers/browser";
import { ensureBundle } from "../helpers/bundle";
import { auditEvents, backups, supportGrants, users } from "../../src/db/schema";
import { newId } from "../../src/shared/ids";
import { defaultGraphiqlAssetsDir } from "../../src/graphiql/graphiql.route";

const editorText = (page: Page, selector: string) =>
  page
    .locator(`${selector} .monaco-editor .view-lines`)
    .first()
    .evaluate((el) => (el.textContent ?? "").replace(/\u00a0/g, " "));

async function typeInto(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(`${selector} .monaco-editor .view-lines`).first().click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(text);
  await page.keyboard.press("Escape");
  await expect.poll(() => editorText(page, selector)).toContain(text.slice(0, 20));
}

describe("GraphiQL for support", () => {
  let stack: TestStack;
  let sam: TestUser;
  let alice: TestUser;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    await ensureBundle({ dir: defaultGraphiqlAssetsDir(), script: "scripts/build-graphiql.mjs", sources: ["scripts/bundle-lib.mjs", "src/graphiql/client"] });
    stack = await startStack();
    sam = await signUp(stack);
    await stack.rt.database.db.update(users).set({ role: "SUPPORT" }).where(eq(users.id, sam.id));
    alice = await signUp(stack);
    const b = await stack.rt.services.backups.create(alice.id, { sourceName: "fileserver", imageSize: 1024 * 1024, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, b.id));
    const now = new Date();
    await stack.rt.database.db.insert(supportGrants).values({ id: newId(), userId: alice.id, scope: "READ", note: "upload stuck", createdAt: now, expiresAt: new Date(now.getTime() + 3_600_000), revokedAt: null });
    ({ browser, page } = await openBrowser(problems, { ignoreConsole: /Failed to load resource: the server responded with a status of 401/ }));
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("shows the role, acts for a customer on their grant, and the customer's audit log has what support read", async () => {
    await page.goto(`${stack.app.url}/graphiql`, { waitUntil: "load" });
    await page.locator(".graphiql-query-editor .monaco-editor").waitFor({ state: "visible", timeout: 30_000 });
    // The saved support documents are tabs.
    await expect.poll(() => page.locator(".graphiql-tab").allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining("WhyDidThisRecoveryFail"), expect.stringContaining("WhereIsThisUpload")]));
    await expect.poll(() => page.getByTestId("support-banner-who").textContent()).toContain("Not signed in");

    await page.getByRole("button", { name: "Headers", exact: true }).click();
    await typeInto(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", `{"Authorization": "Bearer ${sam.token}"}`);
    await typeInto(page, ".graphiql-query-editor", "query Mine { backups { totalCount } }");
    await page.locator(".graphiql-execute-button").click();
    await expect.poll(() => editorText(page, ".graphiql-response")).toContain('"totalCount": 0');
    await expect.poll(() => page.getByTestId("support-banner-who").textContent()).toBe(`Signed in as ${sam.email} (SUPPORT)`);

    await page.getByTestId("act-for").fill(alice.email);
    await page.getByRole("button", { name: "Act", exact: true }).click();
    await expect.poll(() => page.getByTestId("support-banner-who").textContent()).toMatch(new RegExp(`^${sam.email} \\(SUPPORT\\) acting for ${alice.email}: READ grant until .*upload stuck`));
    await page.locator(".graphiql-execute-button").click();
    await expect.poll(() => editorText(page, ".graphiql-response")).toContain('"totalCount": 1');
    const reads = await stack.rt.database.db.select().from(auditEvents).where(and(eq(auditEvents.userId, alice.id), eq(auditEvents.actorId, sam.id), eq(auditEvents.action, "support.read")));
    expect(reads.map((r) => (r.detail as { operation: string | null }).operation)).toContain("Mine");

    await page.getByRole("button", { name: "Stop", exact: true }).click();
    await expect.poll(() => page.getByTestId("support-banner-who").textContent()).toBe(`Signed in as ${sam.email} (SUPPORT)`);
    expect(problems).toEqual([]);
  }, 120_000);
});
