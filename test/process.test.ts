import { describe, expect, it, inject } from "vitest";
import { spawnSync } from "node:child_process";
import path from "node:path";
import WebSocket from "ws";
import { freePort, root, runTs } from "./helpers/processes";

describe("the product process", () => {
  it("refuses to start on a bad configuration, listing every problem in one readable message", () => {
    const res = spawnSync(process.execPath, ["-r", "@swc-node/register", path.join(root, "src/main.ts")], {
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
});
