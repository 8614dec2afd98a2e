import fs from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureConsoleBundle, openBrowser } from "../helpers/browser";
import { signUp, startStack, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { FakeTarget } from "../helpers/fake-target";
import { privateKeyIn, recoveredMachine } from "../helpers/access";
import { publicKeyOf } from "../../src/access/wireguard";

/**
 * The console's "Connect privately" on a machine's panel, in Chromium against an in-process API
 * (the compute target's access port faked in memory, as in test/integration/access.test.ts): make a
 * key for this device, download its .conf, see its QR code, list and revoke keys — under the
 * console's strict CSP, with nothing leaving the machine.
 */


describe("console: Connect privately (Chromium)", () => {
  let stack: TestStack;
  let alice: TestUser;
  let browser: Browser;
  let page: Page;
  const target = new FakeTarget("AWS");
  const problems: string[] = [];

  beforeAll(async () => {
    await ensureConsoleBundle();
    stack = await startStack();
    stack.rt.targets.AWS = target;
    alice = await signUp(stack);
    ({ browser, page } = await openBrowser(problems, { context: { acceptDownloads: true } }));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("creates a key for this device (download the .conf, QR code), lists it, revokes it", async () => {
    const m = await recoveredMachine(stack, target, alice);
    const baseUrl = stack.app.graphqlUrl.replace(/\/graphql$/, "");
    await page.goto(`${baseUrl}/`);
    await page.getByLabel("E-mail address").fill(alice.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("link", { name: "Machines" }).click();

    const panel = page.locator(`[data-instance-id="${m.instance.id}"]`);
    const connect = panel.getByRole("region", { name: "Connect privately" });
    await expect.poll(() => connect.textContent()).toContain(`then to the machine at ${m.opened!.tunnelAddress} on ports 22, 3389, 445`);
    await expect.poll(() => connect.textContent()).toContain("No device has a key yet.");

    await connect.getByLabel("Device name").fill("Alice laptop");
    await connect.getByRole("button", { name: "Create key for this device" }).click();
    await expect.poll(() => connect.getByRole("status").textContent()).toMatch(/^Key for “Alice laptop” created: this device is 100\.\d+\.\d+\.2 in the tunnel\. Save the configuration now/);
    const qr = connect.getByRole("img", { name: "QR code of the WireGuard configuration for Alice laptop" });
    expect(await qr.evaluate((el) => (el as unknown as { children: { length: number } }).children.length)).toBeGreaterThan(0);

    const [download] = await Promise.all([page.waitForEvent("download"), connect.getByRole("link", { name: "Download .conf" }).click()]);
    expect(download.suggestedFilename()).toMatch(/^reclo-web\d+-recovered-Alice-laptop\.conf$/);
    const conf = fs.readFileSync((await download.path())!, "utf8");
    expect(conf).toContain(`Endpoint = ${m.opened!.endpoint}`);
    const laptop = publicKeyOf(privateKeyIn(conf));
    expect(target.access!.admitted(m.providerId)).toEqual([laptop]);

    const keys = connect.locator(".access-keys");
    await expect.poll(() => keys.textContent()).toContain("Devices with a key (1 active)");
    await keys.getByRole("button", { name: "Revoke Alice laptop" }).click();
    await expect.poll(() => keys.textContent()).toContain("Devices with a key (0 active)");
    expect(await keys.textContent()).toMatch(/Alice laptop 100\.\d+\.\d+\.2 — revoked/);
    expect(target.access!.admitted(m.providerId)).toEqual([]);
    // The configuration was only in the one answer: the list carries no private key.
    expect(await keys.textContent()).not.toContain("PrivateKey");

    expect(problems).toEqual([]);
  });
});
