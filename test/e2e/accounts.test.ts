/**
 * Accounts with e-mail as a person uses them (issue 16): in headless Chromium against the real API
 * process, sign up on the console → the mail in mailpit → its link verifies the address → log in;
 * an unverified account sees a banner that sends the link again; forgot password → mail → link →
 * new password, old sessions revoked, the link spent. And from the command line: `reclo signup`
 * (password from stdin, and hidden on a terminal), `reclo password reset`, `reclo whoami`.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ReCloClient } from "../../src/client/graphql-client";
import { LogInDocument, MeDocument } from "../../src/client/generated/graphql";
import { defaultConsoleAssetsDir } from "../../src/console/console.route";
import { ensureBundle } from "../helpers/bundle";
import { killChildren, RECLO_BIN, spawnCli } from "../helpers/cli";
import { linksIn, mailsTo, waitForMail } from "../helpers/mailpit";
import { cliSourceEnv, freePort, root, type Proc } from "../helpers/processes";
import { productEnv, startApi } from "../helpers/product";
import { createAccount, errorOf, PASSWORD, startStack, tokenIn, uniqueName, verifyAddress, VERIFY_SUBJECT, type TestStack } from "../helpers/stack";
import { waitFor } from "../helpers/wait";

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const artifacts = path.join(root, "test-results", "accounts");
const RESET_SUBJECT = /^Reset your ReClo password/;
const NEW_PASSWORD = "a brand new passphrase 42";

describe("accounts in the web console (Chromium)", () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-accounts-"));
  let api: Proc;
  let baseUrl: string;
  let anon: ReCloClient;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const consoleErrors: string[] = [];
  const requestUrls: string[] = [];

  async function screenshot(name: string): Promise<void> {
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, name), fullPage: true });
  }

  async function logIn(email: string, password: string) {
    await page.getByLabel("E-mail address").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
  }

  beforeAll(async () => {
    if (!fs.existsSync(chromiumPath)) throw new Error(`Chromium not found at ${chromiumPath}: apt-get install -y chromium, or set CHROMIUM_PATH`);
    const building = ensureBundle({ dir: defaultConsoleAssetsDir(), script: "scripts/build-console.mjs", sources: ["scripts/bundle-lib.mjs", "src/console/client"] });
    const port = await freePort();
    api = await startApi(productEnv({ name: "accounts", port, dataDir }));
    baseUrl = `http://127.0.0.1:${port}`;
    anon = new ReCloClient({ url: `${baseUrl}/graphql` });
    await building;
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
    context = await browser.newContext({ viewport: { width: 1000, height: 800 }, reducedMotion: "reduce" });
    await context.addInitScript({ content: `document.addEventListener("securitypolicyviolation", (e) => console.error("CSP violation: " + e.violatedDirective));` });
    page = await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error" && !/status of 4\d\d/.test(msg.text())) consoleErrors.push(msg.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(`pageerror: ${error.message}`));
    page.on("request", (req) => requestUrls.push(req.url()));
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await api?.kill();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("sign up on the console → verification mail → its link verifies the address → log in, no banner", async () => {
    const name = uniqueName("web");
    const email = `${name}@example.com`;
    await page.goto(`${baseUrl}/`);
    await page.getByRole("link", { name: "Create an account" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Create a ReClo account");
    await page.getByLabel("Username").fill(name);
    await page.getByLabel("E-mail address").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Check your inbox");
    await screenshot("signed-up.png");

    const mail = await waitForMail(email, VERIFY_SUBJECT);
    const link = linksIn(mail).find((l) => new URL(l).pathname === "/verify-email")!;
    expect(new URL(link).origin).toBe(baseUrl);
    await page.goto(link);
    await expect.poll(() => page.locator("h1").textContent()).toBe("E-mail address verified");
    // The spent token leaves the address bar.
    expect(page.url()).toBe(`${baseUrl}/verify-email`);
    await screenshot("verified.png");

    // Opening the link again: the console says it did not work (INVALID_TOKEN), in words.
    await page.goto(link);
    await expect.poll(() => page.locator("h1").textContent()).toBe("This link did not work");
    expect(await page.getByRole("alert").textContent()).toMatch(/invalid or has expired/);

    await page.goto(`${baseUrl}/`);
    const asked = page.waitForResponse((r) => Boolean(r.request().postData()?.includes("query ConsoleMe")));
    await logIn(email, PASSWORD);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Restore points");
    // me.emailVerified was asked (and is true): the banner stays hidden.
    expect(await (await asked).json()).toMatchObject({ data: { me: { emailVerified: true } } });
    expect(await page.locator("#verify-banner").isVisible()).toBe(false);
    await page.getByRole("button", { name: "Log out" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Log in to ReClo");
  });

  it("an unverified account logs in and sees a banner whose button mails a new link", async () => {
    const u = await createAccount(anon, uniqueName("webunv"), PASSWORD, { verify: false });
    await waitForMail(u.email, VERIFY_SUBJECT);
    await page.goto(`${baseUrl}/`);
    await logIn(u.email, PASSWORD);
    await expect.poll(() => page.locator("#verify-banner").isVisible()).toBe(true);
    expect(await page.locator("#verify-banner").textContent()).toMatch(/Please verify your e-mail address/);
    await page.getByRole("button", { name: "Send the link again" }).click();
    await expect.poll(() => page.locator("#verify-banner").textContent()).toMatch(/A new link is on its way/);
    await screenshot("unverified-banner.png");
    await waitFor("a second verification mail", async () => (await mailsTo(u.email)).filter((m) => VERIFY_SUBJECT.test(m.Subject)).length === 2, 30_000);
    await page.getByRole("button", { name: "Log out" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Log in to ReClo");
  });

  it("forgot password → mail → link → new password: old sessions end, the old password and the link stop working", async () => {
    const u = await createAccount(anon, uniqueName("webreset"));
    await page.goto(`${baseUrl}/`);
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Forgot your password?");
    await page.getByLabel("E-mail address").fill(u.email);
    await page.getByRole("button", { name: "Send me a link" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Check your inbox");
    expect(await page.getByRole("status").first().textContent()).toMatch(/If this e-mail address has a ReClo account/);

    const mail = await waitForMail(u.email, RESET_SUBJECT);
    const link = linksIn(mail).find((l) => new URL(l).pathname === "/reset-password")!;
    await page.goto(link);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Choose a new password");
    await page.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
    await page.getByLabel("New password, again").fill(NEW_PASSWORD);
    await page.getByRole("button", { name: "Set new password" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("Password changed");
    expect(page.url()).toBe(`${baseUrl}/reset-password`);
    await screenshot("password-changed.png");

    expect((await errorOf(anon.withToken(u.token).request(MeDocument))).code).toBe("UNAUTHENTICATED");
    expect((await errorOf(anon.request(LogInDocument, { input: { email: u.email, password: PASSWORD } }))).code).toBe("UNAUTHENTICATED");
    await waitForMail(u.email, /password was changed/);

    // The same link again: the form answers that it no longer works.
    await page.goto(link);
    await page.getByLabel("New password", { exact: true }).fill("yet another passphrase 7");
    await page.getByLabel("New password, again").fill("yet another passphrase 7");
    await page.getByRole("button", { name: "Set new password" }).click();
    await expect.poll(() => page.locator("#reset-error").textContent()).toMatch(/invalid or has expired/);

    await page.goto(`${baseUrl}/`);
    await logIn(u.email, NEW_PASSWORD);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Restore points");
    expect(consoleErrors).toEqual([]);
    // No token of any kind in a request the page made, except the link pages themselves.
    expect(requestUrls.filter((r) => /rcl_/.test(r) && !/\/(verify-email|reset-password)\?token=/.test(r))).toEqual([]);
  });
});

describe("accounts from the command line: reclo signup, password reset, whoami", () => {
  let stack: TestStack;
  let tmp: string;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    stack = await startStack();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-accounts-"));
  });
  afterEach(() => killChildren(children));
  afterAll(async () => {
    await stack?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  function cliEnv(configDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: configDir, RECLO_URL: stack.app.graphqlUrl, ...extra };
    for (const k of ["RECLO_TOKEN", "RECLO_PASSWORD", "XDG_CONFIG_HOME"]) if (!(k in extra)) delete env[k];
    return env;
  }

  it("reclo signup (password on stdin) mails the link; whoami says unverified until it is followed; then login works", async () => {
    const name = uniqueName("cli");
    const email = `${name}@example.com`;
    const dir = path.join(tmp, "signup");
    const run = await spawnCli(children, ["signup", "--username", name, "--email", email], { env: cliEnv(dir), input: `${PASSWORD}\n` });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Sign-up received/);
    expect(run.stdout).toContain(`reclo login --email ${email}`);

    const login = await spawnCli(children, ["login", "--email", email], { env: cliEnv(dir), input: `${PASSWORD}\n` });
    expect(login.code).toBe(0);
    const before = await spawnCli(children, ["whoami"], { env: cliEnv(dir) });
    expect(before.stdout).toMatch(/not verified yet/);

    await verifyAddress(stack.client, email);
    const after = await spawnCli(children, ["whoami"], { env: cliEnv(dir) });
    expect(after.code).toBe(0);
    expect(after.stdout).not.toMatch(/not verified/);

    // A policy failure is one readable line with its code.
    const weak = await spawnCli(children, ["signup", "--username", uniqueName("cliweak"), "--email", `${uniqueName("cliweak")}@example.com`], { env: cliEnv(dir), input: "short\n" });
    expect(weak.code).toBe(1);
    expect(weak.stderr).toMatch(/Sign-up failed: .*12/);
  });

  it("reclo signup on a terminal asks for the password twice without echoing it", async () => {
    const name = uniqueName("clitty");
    const email = `${name}@example.com`;
    const command = [process.execPath, RECLO_BIN, "signup", "--username", name, "--email", email].map((a) => `'${a}'`).join(" ");
    // script(1) gives the CLI a pseudo-terminal; the answers are typed after each prompt appears.
    const child = spawn("script", ["-qec", command, "/dev/null"], { cwd: root, env: cliEnv(path.join(tmp, "tty")), stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (s: string) => (out += s));
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    await waitFor("the password prompt", () => /Password \(12 characters or more\): /.test(out), 30_000, 50);
    child.stdin!.write(`${PASSWORD}\r`);
    await waitFor("the second prompt", () => /Password again: /.test(out), 10_000, 50);
    child.stdin!.write(`${PASSWORD}\r`);
    await waitFor("the sign-up answer", () => /Sign-up received/.test(out), 30_000, 50);
    child.stdin!.end();
    expect(await closed).toBe(0);
    expect(out).not.toContain(PASSWORD);
    await waitForMail(email, VERIFY_SUBJECT);
  });

  it("reclo password reset --email mails a link for a registered address and answers the same for an unknown one", async () => {
    const u = await createAccount(stack.client, uniqueName("clireset"));
    const dir = path.join(tmp, "reset");
    const known = await spawnCli(children, ["password", "reset", "--email", u.email], { env: cliEnv(dir) });
    const unknownEmail = `${uniqueName("clinobody")}@example.com`;
    const unknown = await spawnCli(children, ["password", "reset", "--email", unknownEmail], { env: cliEnv(dir) });
    expect(known.code).toBe(0);
    expect(unknown).toEqual(known);
    expect(known.stdout).toMatch(/If this e-mail address has a ReClo account/);
    const mail = await waitForMail(u.email, RESET_SUBJECT);
    expect(tokenIn(mail, "/reset-password")).toMatch(/^rcl_/);
    await stack.rt.services.accounts.whenIdle();
    expect(await mailsTo(unknownEmail)).toEqual([]);
  });
});
