import { describe, expect, it } from "vitest";
import { PASSWORD, uniqueName } from "../helpers/stack";
import { AgentKeysDocument } from "../../src/client/generated/graphql";
import { useConsole } from "../helpers/console-fixture";

/**
 * The console's Agent keys page (issue 18) in Chromium against an in-process API: create a key for
 * a server (its secret shown once, and it works as an agent key), see when and from where it was
 * last used, revoke it (refused from then on).
 */
describe("console: agent keys (Chromium)", () => {
  const fixture = useConsole();

  it("creates a key (shown once), lists its last use and address, revokes it", async () => {
    const { stack, alice, page, problems } = fixture;
    const source = uniqueName("fileserver");
    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("navigation").getByRole("link", { name: "Agent keys" }).click();
    await expect.poll(() => page.locator(".empty-agent-keys").count()).toBe(1);

    await page.getByLabel("Server (source name)").fill(source);
    await page.getByLabel("Note (optional)").fill("the office server");
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = page.locator(".agent-key-secret");
    await expect.poll(() => secret.count()).toBe(1);
    const key = (await secret.textContent())!;
    expect(key).toMatch(/^rak_[A-Za-z0-9_-]{43}$/);
    const { agentKeys } = await alice.client.request(AgentKeysDocument, {});
    expect(agentKeys).toHaveLength(1);
    const id = agentKeys[0]!.id;
    const card = page.locator(`[data-agent-key-id="${id}"]`);
    expect(await card.textContent()).toContain("the office server");
    expect(await card.locator(".agent-key-used").textContent()).toContain("never used");

    // The key works as an agent's: its source's plan.
    const res = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: "query($s: String!) { backupPlan(sourceName: $s) { kind } }", variables: { s: source } }),
    });
    expect(await res.json()).toEqual({ data: { backupPlan: { kind: "FULL" } } });

    // After a reload: the secret is gone, the last use (time and address) is shown.
    await page.reload();
    await expect.poll(() => card.locator(".agent-key-used").textContent()).toMatch(/last used .* from (127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)/);
    expect(await page.locator(".agent-key-secret").count()).toBe(0);
    expect(await page.content()).not.toContain(key);

    await card.getByRole("button", { name: "Revoke" }).click();
    await expect.poll(() => card.locator(".agent-key-status").count()).toBe(1);
    expect(await card.getByRole("button", { name: "Revoke" }).count()).toBe(0);
    const after = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: "query($s: String!) { backupPlan(sourceName: $s) { kind } }", variables: { s: source } }),
    });
    expect(((await after.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe("UNAUTHENTICATED");
    expect(problems).toEqual([]);
  });
});
