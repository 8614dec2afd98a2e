/**
 * The self-hosted GraphiQL page (src/graphiql): plain HTTP checks of the router, and an
 * end-to-end run in headless Chromium (/usr/bin/chromium, or $CHROMIUM_PATH) against a tiny
 * GraphQL server (HTTP + graphql-ws) — no database or other services needed.
 *
 * Builds dist/graphiql first when it is missing or older than its sources.
 */
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import express from "express";
import { buildSchema, execute, graphql, parse, subscribe, validate } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { chromium } from "playwright-core";
import { ensureBundle } from "../helpers/bundle";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import {
  GRAPHIQL_NOT_BUILT_MESSAGE,
  defaultGraphiqlAssetsDir,
  graphiqlRouter,
} from "../../src/graphiql/graphiql.route.js";

const assetsDir = defaultGraphiqlAssetsDir();
const repoRoot = path.resolve(assetsDir, "..", "..");
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const screenshotPath = path.join(os.tmpdir(), "reclo-graphiql.png");
const TOKEN = "Bearer test-token";

// ---------------------------------------------------------------------------------------------
// Bundle

const ensureGraphiqlBundle = () => ensureBundle({ dir: assetsDir, script: "scripts/build-graphiql.mjs", sources: ["scripts/bundle-lib.mjs", "src/graphiql/client"] });

// ---------------------------------------------------------------------------------------------
// A minimal GraphQL server: POST /graphql (HTTP) + graphql-ws on the same path.

const schema = buildSchema(`
  type Query {
    hello: String
    "The Authorization header of the HTTP request."
    whoami: String
  }
  type Subscription {
    "Three events echoing connectionParams.authorization of the WebSocket."
    whoami: String
  }
`);

type Ctx = { authorization?: string | undefined };

const queryRoot = {
  hello: () => "world",
  whoami: (_args: unknown, ctx: Ctx) => ctx.authorization ?? null,
};

const subscriptionRoot = {
  async *whoami(_args: unknown, ctx: Ctx) {
    for (let i = 1; i <= 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      yield { whoami: `ws:${ctx.authorization ?? "anonymous"}#${i}` };
    }
  },
};

type Served = { baseUrl: string; close(): Promise<void> };

async function serve(app: express.Express, withWebSocket = false): Promise<Served> {
  const server = http.createServer(app);
  let wss: WebSocketServer | undefined;
  if (withWebSocket) {
    wss = new WebSocketServer({ server, path: "/graphql" });
    useServer(
      {
        schema,
        roots: { subscription: subscriptionRoot },
        // Under vitest, this file's "graphql" (resolved by Vite via the "module" field) and the one
        // graphql-ws imports natively (main: CJS) are two instances: hand ours to graphql-ws so
        // the schema's instanceof checks pass.
        parse,
        validate,
        execute,
        subscribe,
        context: (ctx): Ctx => {
          const authorization = ctx.connectionParams?.["authorization"];
          return { authorization: typeof authorization === "string" ? authorization : undefined };
        },
      },
      wss,
    );
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    async close() {
      if (wss) {
        for (const client of wss.clients) client.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      }
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function graphqlApp(routerAssetsDir: string): express.Express {
  const app = express();
  app.use("/graphiql", graphiqlRouter(routerAssetsDir));
  app.post("/graphql", express.json(), async (req, res) => {
    const body = (req.body ?? {}) as { query?: unknown; variables?: unknown; operationName?: unknown };
    if (typeof body.query !== "string") {
      res.status(400).json({ errors: [{ message: "query missing" }] });
      return;
    }
    const result = await graphql({
      schema,
      source: body.query,
      rootValue: queryRoot,
      contextValue: { authorization: req.get("authorization") } satisfies Ctx,
      variableValues: (body.variables ?? undefined) as Record<string, unknown> | undefined,
      operationName: typeof body.operationName === "string" ? body.operationName : undefined,
    });
    res.json(result);
  });
  return app;
}

// ---------------------------------------------------------------------------------------------

let served: Served;

beforeAll(async () => {
  await ensureGraphiqlBundle();
  served = await serve(graphqlApp(assetsDir), true);
});

afterAll(async () => {
  await served?.close();
});

describe("graphiql router (HTTP)", () => {
  it("resolves the assets dir under the repo root", () => {
    expect(fs.existsSync(path.join(repoRoot, "package.json"))).toBe(true);
    expect(fs.existsSync(path.join(repoRoot, "scripts", "build-graphiql.mjs"))).toBe(true);
    expect(assetsDir).toBe(path.join(repoRoot, "dist", "graphiql"));
  });

  it("serves index.html with a strict CSP and only same-origin assets that all load", async () => {
    const res = await fetch(`${served.baseUrl}/graphiql`);
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toMatch(/font-src 'self'(;|$)/);
    expect(csp).toMatch(/worker-src 'self'(;|$)/);
    expect(csp).toContain("connect-src 'self' ws: wss:");
    expect(html).toContain("<title>ReClo GraphiQL</title>");

    const refs = [...html.matchAll(/<(?:script|link)\b[^>]*?\s(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThanOrEqual(3);
    const cssUrls: string[] = [];
    for (const ref of refs) {
      const url = new URL(ref, `${served.baseUrl}/graphiql`);
      expect(url.origin, ref).toBe(served.baseUrl);
      expect(url.pathname, ref).toMatch(/^\/graphiql\/assets\//);
      const asset = await fetch(url);
      const body = await asset.text();
      expect(asset.status, ref).toBe(200);
      expect(asset.headers.get("cache-control"), ref).toMatch(/max-age=31536000.*immutable/);
      if (url.pathname.endsWith(".js")) expect(asset.headers.get("content-type")).toMatch(/javascript/);
      if (url.pathname.endsWith(".css")) {
        expect(asset.headers.get("content-type")).toMatch(/^text\/css/);
        for (const m of body.matchAll(/url\(\s*["']?([^"')]+)/g)) cssUrls.push(new URL(m[1]!, url).href);
      }
    }
    // Fonts referenced from the CSS are self-hosted too (no data: fonts, see font-src 'self').
    const fonts = cssUrls.filter((u) => /\.(woff2?|ttf)$/.test(u));
    expect(fonts.length).toBeGreaterThan(0);
    for (const u of [...new Set(cssUrls)].filter((x) => !x.startsWith("data:image/"))) {
      expect(new URL(u).origin, u).toBe(served.baseUrl);
      const asset = await fetch(u);
      await asset.arrayBuffer();
      expect(asset.status, u).toBe(200);
    }

    const missing = await fetch(`${served.baseUrl}/graphiql/assets/nope-123.js`);
    await missing.text();
    expect(missing.status).toBe(404);
  });

  it("answers 503 with a clear message when the bundle is missing", async () => {
    const empty = await serve(graphqlApp(path.join(os.tmpdir(), `reclo-no-graphiql-${process.pid}`)));
    try {
      for (const p of ["/graphiql", "/graphiql/", "/graphiql/assets/app.js"]) {
        const res = await fetch(`${empty.baseUrl}${p}`);
        const body = await res.text();
        expect(res.status, p).toBe(503);
        expect(res.headers.get("content-type"), p).toMatch(/^text\/plain/);
        expect(body.trim(), p).toBe(GRAPHIQL_NOT_BUILT_MESSAGE);
      }
    } finally {
      await empty.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

function isLoopback(hostname: string): boolean {
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]" || hostname === "::1";
}

/** Text currently shown in a Monaco editor inside `selector` (Monaco renders spaces as NBSP). */
async function editorText(page: Page, selector: string): Promise<string> {
  return page
    .locator(`${selector} .monaco-editor .view-lines`)
    .first()
    .evaluate((el) => (el.textContent ?? "").replace(/\u00a0/g, " "));
}

async function replaceEditorContent(page: Page, editor: string, text: string): Promise<void> {
  await page.locator(`${editor} .monaco-editor .view-lines`).first().click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(text);
  await page.keyboard.press("Escape"); // close the autocomplete popup, if any
  // GraphiQL derives the operation name/AST from the editor with a 100 ms debounce; clicking
  // "run" faster than a human would sends the previous operation name.
  await page.waitForTimeout(300);
}

async function runAndWaitFor(page: Page, expected: string): Promise<void> {
  await page.locator(".graphiql-execute-button").click();
  try {
    await expect.poll(() => editorText(page, ".graphiql-response"), { timeout: 15_000 }).toContain(expected);
  } catch (error) {
    await page.screenshot({ path: screenshotPath.replace(/\.png$/, "-failure.png") });
    throw error;
  }
}

describe.skipIf(process.env.GRAPHIQL_SKIP_BROWSER === "1")("graphiql page in Chromium", () => {
  let context: BrowserContext;
  let page: Page;
  let userDataDir: string;
  const external: string[] = [];
  const consoleErrors: string[] = [];
  const failedRequests: string[] = [];

  beforeAll(async () => {
    if (!fs.existsSync(chromiumPath)) {
      throw new Error(`Chromium not found at ${chromiumPath}: apt-get install -y chromium, or set CHROMIUM_PATH`);
    }
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-graphiql-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 800 },
    });
    // Nothing may leave the machine: abort (and record) every non-loopback request.
    await context.route("**/*", async (route) => {
      const url = route.request().url();
      const { protocol, hostname } = new URL(url);
      if ((protocol === "http:" || protocol === "https:") && !isLoopback(hostname)) {
        external.push(url);
        await route.abort("blockedbyclient");
        return;
      }
      await route.fallback();
    });
    await context.routeWebSocket(/.*/, (ws) => {
      if (isLoopback(new URL(ws.url()).hostname)) {
        ws.connectToServer();
      } else {
        external.push(ws.url());
        void ws.close({ code: 1008, reason: "blocked by test" });
      }
    });
    // CSP violations are reported as console errors anyway; this also catches report-only ones.
    await context.addInitScript({
      content: `document.addEventListener("securitypolicyviolation", (e) => {
        console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI + " (" + e.sourceFile + ":" + e.lineNumber + ")");
      });`,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(msg.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(`pageerror: ${error.message}`));
    page.on("request", (req) => {
      const { protocol, hostname } = new URL(req.url());
      if ((protocol === "http:" || protocol === "https:" || protocol === "ws:" || protocol === "wss:") && !isLoopback(hostname)) {
        if (!external.includes(req.url())) external.push(req.url());
      }
    });
    page.on("requestfailed", (req) => {
      if (isLoopback(new URL(req.url()).hostname)) failedRequests.push(`${req.url()}: ${req.failure()?.errorText}`);
    });
    page.on("response", (res) => {
      if (res.status() >= 400) failedRequests.push(`${res.url()}: HTTP ${res.status()}`);
    });
  });

  afterAll(async () => {
    await context?.close();
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  });

  it("renders GraphiQL with no external requests, console errors or CSP violations", async () => {
    await page.goto(`${served.baseUrl}/graphiql`, { waitUntil: "load" });
    await page.locator(".graphiql-container").waitFor({ state: "visible", timeout: 30_000 });
    await page.locator(".graphiql-query-editor .monaco-editor").waitFor({ state: "visible", timeout: 30_000 });
    await page.locator(".graphiql-response .monaco-editor").waitFor({ state: "visible", timeout: 30_000 });
    expect(await page.title()).toBe("ReClo GraphiQL");
    await expect.poll(() => page.locator(".graphiql-logo").textContent()).toBe("ReClo GraphiQL");
    // The default query explains how to authenticate.
    expect(await editorText(page, ".graphiql-query-editor")).toContain("logIn(input:");
    // Let schema introspection and the Monaco workers (incl. graphql) start up.
    await page.waitForTimeout(1_500);
    expect(external).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(failedRequests).toEqual([]);
  });

  it("runs a query typed into the editor", async () => {
    await replaceEditorContent(page, ".graphiql-query-editor", "{ hello }");
    expect((await editorText(page, ".graphiql-query-editor")).trim()).toBe("{ hello }");
    await runAndWaitFor(page, '"hello": "world"');
    await page.screenshot({ path: screenshotPath });
    expect(consoleErrors).toEqual([]);
  });

  it("sends the Authorization from the Headers tab over HTTP and as graphql-ws connectionParams", async () => {
    await page.getByRole("button", { name: "Headers", exact: true }).click();
    await replaceEditorContent(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", `{"Authorization": "${TOKEN}"}`);

    await replaceEditorContent(page, ".graphiql-query-editor", "query Me { whoami }");
    await runAndWaitFor(page, `"whoami": "${TOKEN}"`);

    await replaceEditorContent(page, ".graphiql-query-editor", "subscription Live { whoami }");
    await runAndWaitFor(page, `"whoami": "ws:${TOKEN}#3"`);
    await page.screenshot({ path: screenshotPath });

    expect(external).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(failedRequests).toEqual([]);
  });
});
