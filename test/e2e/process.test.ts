import { describe, expect, it, inject } from "vitest";
import { LOCKED_BACKUPS_BUCKET } from "../helpers/buckets";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { freePort, nodeArgsFor, root, runTs } from "../helpers/processes";

describe("the product process", () => {
  it("refuses to start on a bad configuration, listing every problem in one readable message", () => {
    const res = spawnSync(process.execPath, nodeArgsFor("src/main.ts"), {
      cwd: root,
      env: { ...process.env, PORT: "99999", DATABASE_URL: "postgres://nope", TOKEN_TTL: "soon" },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/Invalid configuration \(3 problems\)/);
    expect(res.stderr).toMatch(/PORT: must be at most 65535/);
    expect(res.stderr).toMatch(/DATABASE_URL: expected a URL starting with mysql:\/\//);
    expect(res.stderr).toMatch(/TOKEN_TTL: expected a duration/);
  });

  it("runs API + worker in one process, prints its URLs, and shuts down gracefully on SIGTERM", async () => {
    const port = await freePort();
    const proc = runTs("src/main.ts", {
      NODE_ENV: "test",
      LOG_LEVEL: "info",
      PORT: String(port),
      DATABASE_URL: inject("databaseUrl"),
      MIGRATE_ON_START: "true",
      RUN_SCHEDULES: "false",
      TEMPORAL_TASK_QUEUE: `proc-${process.pid}-${Date.now()}`,
      TEMPORAL_WORKFLOW_BUNDLE: inject("workflowBundlePath"),
    });
    try {
      await proc.waitFor(/ReClo is running/, 90_000);
      expect(proc.output()).toContain("ReClo is running in test mode.");
      expect(proc.output()).toContain(`GraphQL:  http://127.0.0.1:${port}/graphql`);
      expect(proc.output()).toContain(`GraphiQL: http://127.0.0.1:${port}/graphiql`);
      expect(proc.output()).toMatch(/"msg":"temporal worker connected"/);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(200);
      await ready.arrayBuffer();

      // An open WebSocket is closed by the drain, and the process exits 0.
      const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, "graphql-transport-ws");
      await new Promise((r, j) => ws.once("open", r).once("error", j));
      const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
      const exited = new Promise<number | null>((r) => proc.child.once("exit", (code) => r(code)));
      proc.child.kill("SIGTERM");
      expect(await closed).toBeGreaterThanOrEqual(1000);
      expect(await exited).toBe(0);
      expect(proc.output()).toMatch(/"msg":"shutting down"/);
    } finally {
      await proc.kill("SIGKILL");
    }
  }, 120_000);

  it("npm start runs in production mode unless NODE_ENV is set explicitly", () => {
    // start.sh ends in run_product; a stand-in `node` on PATH reports what it was started with.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-fake-node-"));
    try {
      fs.writeFileSync(path.join(bin, "node"), '#!/bin/sh\necho "NODE_ENV=$NODE_ENV S3_ENDPOINT=$S3_ENDPOINT ARGS=$*"\n', { mode: 0o755 });
      const run = (extra: NodeJS.ProcessEnv) => {
        const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...extra };
        for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
        const res = spawnSync("bash", ["-c", ". scripts/lib.sh && run_product"], { cwd: root, env, encoding: "utf8", timeout: 30_000 });
        expect(res.status, res.stderr).toBe(0);
        return res.stdout.trim();
      };
      expect(run({ NODE_ENV: undefined, S3_ENDPOINT: undefined, RECLO_NODE_FLAGS: undefined })).toBe("NODE_ENV=production S3_ENDPOINT=http://127.0.0.1:7070 ARGS=--max-semi-space-size=32 dist/src/main.js");
      // RECLO_NODE_FLAGS replaces the default flags; empty: node's own defaults.
      expect(run({ RECLO_NODE_FLAGS: "" })).toMatch(/ ARGS=dist\/src\/main\.js$/);
      expect(run({ RECLO_NODE_FLAGS: "--max-old-space-size=4096 --max-semi-space-size=64" })).toMatch(/ ARGS=--max-old-space-size=4096 --max-semi-space-size=64 dist\/src\/main\.js$/);
      expect(run({ NODE_ENV: "development" })).toMatch(/^NODE_ENV=development /);
      expect(fs.readFileSync(path.join(root, "scripts/start.sh"), "utf8").trimEnd().split("\n").at(-1)).toBe("run_product");
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it("says its mode in the banner; in production no error response carries a stack trace or internal text (HTTP and WebSocket)", async () => {
    const errorsFrom = async (env: NodeJS.ProcessEnv, banner: RegExp) => {
      const port = await freePort();
      const proc = runTs("src/main.ts", {
        LOG_LEVEL: "warn",
        PORT: String(port),
        DATABASE_URL: inject("databaseUrl"),
        MIGRATE_ON_START: "false",
        RUN_WORKER: "false",
        S3_ENDPOINT: "http://127.0.0.1:7070",
        ...env,
      });
      try {
        await proc.waitFor(banner, 90_000);
        const http = await fetch(`http://127.0.0.1:${port}/graphql`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: "{ me { id } nope }" }) });
        const httpBody = await http.text();
        // Anonymous WebSocket operations are refused unparsed (request limits): sign in first so the
        // subscription is parsed, validated and refused with a validation error.
        const gql = async (query: string, variables: Record<string, unknown>) =>
          (await (await fetch(`http://127.0.0.1:${port}/graphql`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) })).json()) as {
            data?: { logIn?: { token: string } };
          };
        const name = `proc${process.pid}x${Date.now().toString(36)}${Object.keys(env).join("").length}`;
        const input = { username: name, email: `${name}@example.com`, password: "correct horse battery staple" };
        await gql("mutation($input: SignUpInput!) { signUp(input: $input) { accepted } }", { input });
        const login = await gql("mutation($input: LogInInput!) { logIn(input: $input) { token } }", { input: { email: input.email, password: input.password } });
        const token = login.data?.logIn?.token;
        expect(token).toBeTruthy();
        const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, "graphql-transport-ws");
        const messages: string[] = [];
        await new Promise<void>((resolve, reject) => {
          ws.once("error", reject);
          ws.on("message", (m: Buffer) => {
            const msg = JSON.parse(m.toString()) as { type: string };
            if (msg.type === "connection_ack") ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: "subscription { nope }" } }));
            else {
              messages.push(m.toString());
              resolve();
            }
          });
          ws.once("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })));
        });
        ws.close();
        return { http: httpBody, ws: messages.join("\n"), output: proc.output() };
      } finally {
        await proc.kill();
      }
    };
    const dev = await errorsFrom({ NODE_ENV: "development" }, /ReClo is running in development mode\./);
    expect(dev.output).toMatch(/errors carry stack traces/);
    // The check below would see a stack trace: development does show one.
    expect(dev.http).toContain("stacktrace");

    // Production wants S3 Object Lock on the backups bucket (OBJECT_LOCK_MODE's production default).
    const prod = await errorsFrom({ NODE_ENV: "production", S3_BACKUPS_BUCKET: LOCKED_BACKUPS_BUCKET }, /ReClo is running in production mode\./);
    for (const body of [prod.http, prod.ws]) {
      expect(body).toContain("BAD_USER_INPUT");
      expect(body).not.toMatch(/stacktrace|\.ts:\d+|node_modules|at [A-Za-z.]+ \(/);
    }
  }, 200_000);
});
