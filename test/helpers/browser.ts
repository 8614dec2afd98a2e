import fs from "node:fs";
import { chromium, type Browser, type BrowserContextOptions, type Page } from "playwright-core";
import { defaultConsoleAssetsDir } from "../../src/console/console.route";
import { ensureBundle } from "./bundle";

/** Debian's chromium (scripts/test.sh installs it), or CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const isLoopback = (host: string) => host === "127.0.0.1" || host === "localhost" || host === "[::1]";

/** Builds dist/console when it is missing or older than its sources. */
export function ensureConsoleBundle(): Promise<unknown> {
  return ensureBundle({ dir: defaultConsoleAssetsDir(), script: "scripts/build-console.mjs", sources: ["scripts/bundle-lib.mjs", "src/console/client"] });
}

/**
 * Headless Chromium with one page, held to the console's promises: every request that would leave
 * the machine is aborted, and it, each CSP violation, console error and page error lands in
 * `problems` (tests expect it empty). `ignoreConsole`: console errors a test provokes on purpose.
 */
export async function openBrowser(problems: string[], opts: { context?: BrowserContextOptions; ignoreConsole?: RegExp } = {}): Promise<{ browser: Browser; page: Page }> {
  if (!fs.existsSync(CHROMIUM_PATH)) throw new Error(`Chromium not found at ${CHROMIUM_PATH}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, reducedMotion: "reduce", ...opts.context });
  await context.route("**/*", async (route) => {
    const { protocol, hostname } = new URL(route.request().url());
    if ((protocol === "http:" || protocol === "https:") && !isLoopback(hostname)) {
      problems.push(`external request ${route.request().url()}`);
      await route.abort("blockedbyclient");
      return;
    }
    await route.fallback();
  });
  await context.addInitScript({ content: `document.addEventListener("securitypolicyviolation", (e) => console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI));` });
  const page = await context.newPage();
  page.on("console", (msg) => msg.type() === "error" && !opts.ignoreConsole?.test(msg.text()) && problems.push(msg.text()));
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  return { browser, page };
}
