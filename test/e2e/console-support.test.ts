import { describe, expect, it } from "vitest";
import { PASSWORD } from "../helpers/stack";
import { SupportGrantsDocument } from "../../src/client/generated/graphql";
import { useConsole } from "../helpers/console-fixture";

/**
 * The console's Support access and Activity pages (issue 17) in Chromium against an in-process API:
 * grant access with a duration, scope and note, see it listed, revoke it; the Activity page lists
 * the login, the grant and the revoke, newest first — under the console's CSP, nothing leaving the
 * machine.
 */
describe("console: support access and activity (Chromium)", () => {
  const fixture = useConsole();

  it("grants support access, lists it, revokes it; Activity shows login, grant and revoke newest first", async () => {
    const { stack, alice, page, problems } = fixture;
    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("navigation").getByRole("link", { name: "Support access" }).click();
    await expect.poll(() => page.locator(".empty-grants").count()).toBe(1);

    await page.getByLabel("For how long").selectOption({ label: "4 hours" });
    await page.getByLabel("Support may").selectOption("READ_AND_RETRY");
    await page.getByLabel("Note for support (optional)").fill("The recovery of fileserver fails at IMPORTING");
    await page.getByRole("button", { name: "Grant access" }).click();
    const card = page.locator(".support-grant").first();
    await expect.poll(() => card.textContent()).toContain("The recovery of fileserver fails at IMPORTING");
    expect(await card.locator(".grant-status").textContent()).toBe("Active");
    expect(await card.textContent()).toContain("Look, retry and cancel recoveries");

    // What the API holds: the grant as chosen in the form.
    const { supportGrants } = await alice.client.request(SupportGrantsDocument, {});
    const g = supportGrants.edges[0]!.node;
    expect(g).toMatchObject({ scope: "READ_AND_RETRY", status: "LIVE", note: "The recovery of fileserver fails at IMPORTING" });
    expect(new Date(g.expiresAt).getTime() - new Date(g.createdAt).getTime()).toBe(4 * 3600_000);
    expect(await card.getAttribute("data-grant-id")).toBe(g.id);

    await card.getByRole("button", { name: "Revoke" }).click();
    await expect.poll(() => page.locator(`[data-grant-id="${g.id}"] .grant-status`).textContent()).toBe("Revoked");
    expect(await page.locator(`[data-grant-id="${g.id}"]`).getByRole("button", { name: "Revoke" }).count()).toBe(0);
    expect((await alice.client.request(SupportGrantsDocument, {})).supportGrants.edges[0]!.node.status).toBe("REVOKED");

    // Still there after a reload (from the API, not the page's memory).
    await page.reload();
    await expect.poll(() => page.locator(`[data-grant-id="${g.id}"] .grant-status`).textContent()).toBe("Revoked");

    await page.getByRole("navigation").getByRole("link", { name: "Activity" }).click();
    const rows = page.locator(".activity-log tbody tr");
    await expect.poll(() => rows.count()).toBeGreaterThanOrEqual(4);
    const actions = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-action")));
    // Newest first: the revoke, the grant, the console's login, the test's own login, the verification.
    expect(actions.slice(0, 4)).toEqual(["grant.revoke", "grant.create", "auth.login", "auth.login"]);
    expect(actions.at(-1)).toBe("auth.email_verified");
    expect(await rows.first().textContent()).toContain("Support access revoked");
    expect(await rows.first().textContent()).toContain(alice.username);
    expect(await rows.first().textContent()).toContain(`SupportGrant:${g.id}`);
    expect(problems).toEqual([]);
  });
});
