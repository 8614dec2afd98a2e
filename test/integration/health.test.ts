import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, type TestStack } from "../helpers/stack";

describe("/healthz and /readyz", () => {
  let stack: TestStack;
  let s3Down = false;
  beforeAll(async () => {
    stack = await startStack({}, {});
    // Wrap the real S3 check so one test can make it fail as if the store were unreachable.
    const real = stack.rt.s3;
    const send = real.send.bind(real);
    real.send = ((cmd: unknown, opts?: unknown) => (s3Down ? Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:7070")) : send(cmd as never, opts as never))) as typeof real.send;
  });
  afterAll(() => stack.stop());

  it("healthz answers while the process is up", async () => {
    const res = await fetch(`${stack.app.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok" });
  });

  it("readyz checks the database, Temporal and S3 for real", async () => {
    const res = await fetch(`${stack.app.url}/readyz`);
    const body = (await res.json()) as { status: string; checks: Record<string, { ok: boolean }> };
    expect(res.status).toBe(200);
    expect(body.status).toBe("ready");
    expect(Object.keys(body.checks).sort()).toEqual(["database", "s3", "temporal"]);
    expect(Object.values(body.checks).every((c) => c.ok)).toBe(true);
  });

  it("readyz answers 503 naming the dependency that fails", async () => {
    s3Down = true;
    try {
      // /readyz answers from the background checks: run them now instead of waiting for the next round.
      await stack.rt.availability.checkAll();
      const res = await fetch(`${stack.app.url}/readyz`);
      const body = (await res.json()) as { status: string; checks: Record<string, { ok: boolean; error?: string }> };
      expect(res.status).toBe(503);
      expect(body.checks.s3).toMatchObject({ ok: false, error: expect.stringContaining("ECONNREFUSED") });
      expect(body.checks.database!.ok).toBe(true);
    } finally {
      s3Down = false;
      await stack.rt.availability.checkAll();
    }
  });

  it("serves the self-hosted GraphiQL page and its same-origin assets", async () => {
    const res = await fetch(`${stack.app.url}/graphiql`);
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      expect(asset.startsWith("/graphiql/")).toBe(true);
      const a = await fetch(`${stack.app.url}${asset}`);
      await a.arrayBuffer();
      expect(a.status).toBe(200);
    }
  });

  it("every response carries a request id, and an incoming one is kept", async () => {
    const res = await fetch(`${stack.app.url}/healthz`, { headers: { "x-request-id": "trace-abc.123" } });
    await res.arrayBuffer();
    expect(res.headers.get("x-request-id")).toBe("trace-abc.123");
    const res2 = await fetch(`${stack.app.url}/healthz`, { headers: { "x-request-id": "bad id with spaces" } });
    await res2.arrayBuffer();
    expect(res2.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("readyz with a stopped dependency", () => {
  let stack: TestStack;
  beforeAll(async () => {
    // The S3 endpoint points at a closed port: the real client fails to connect.
    stack = await startStack({ S3_ENDPOINT: "http://127.0.0.1:9" });
  });
  afterAll(() => stack.stop());

  it("reports S3 unreachable", async () => {
    const res = await fetch(`${stack.app.url}/readyz`);
    const body = (await res.json()) as { checks: Record<string, { ok: boolean }> };
    expect(res.status).toBe(503);
    expect(body.checks.s3!.ok).toBe(false);
    expect(body.checks.temporal!.ok).toBe(true);
  });
});

describe("readyz details are for operators", () => {
  let stack: TestStack;
  let s3Down = false;
  const token = "readyz-secret-0123456789abcdef";
  beforeAll(async () => {
    // One trusted proxy hop, so a request can arrive "from" a remote client (its X-Forwarded-For).
    stack = await startStack({ TRUST_PROXY: "1", READYZ_TOKEN: token });
    const real = stack.rt.s3;
    const send = real.send.bind(real);
    real.send = ((cmd: unknown, opts?: unknown) => (s3Down ? Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:7070")) : send(cmd as never, opts as never))) as typeof real.send;
  });
  afterAll(() => stack.stop());

  const readyz = async (headers: Record<string, string>) => {
    const res = await fetch(`${stack.app.url}/readyz`, { headers });
    return { status: res.status, body: (await res.json()) as { status: string; checks?: Record<string, { ok: boolean; error?: string }> } };
  };

  it("a remote caller gets the status only, also when a dependency fails; loopback or the token get the details", async () => {
    s3Down = true;
    try {
      await stack.rt.availability.checkAll();
      const remote = await readyz({ "x-forwarded-for": "203.0.113.5" });
      expect(remote).toEqual({ status: 503, body: { status: "not ready" } });
      const wrongToken = await readyz({ "x-forwarded-for": "203.0.113.5", authorization: "Bearer readyz-secret-0123456789abcdeX" });
      expect(wrongToken.body).toEqual({ status: "not ready" });
      const spoofedLoopback = await readyz({ "x-forwarded-for": "127.0.0.1, 203.0.113.5" });
      expect(spoofedLoopback.body).toEqual({ status: "not ready" });

      const operator = await readyz({ "x-forwarded-for": "203.0.113.5", authorization: `Bearer ${token}` });
      expect(operator.status).toBe(503);
      expect(operator.body.checks!.s3).toMatchObject({ ok: false, error: expect.stringContaining("ECONNREFUSED") });
      const local = await readyz({});
      expect(local.body.checks!.s3!.ok).toBe(false);
    } finally {
      s3Down = false;
    }
    await stack.rt.availability.checkAll();
    expect(await readyz({ "x-forwarded-for": "203.0.113.5" })).toEqual({ status: 200, body: { status: "ready" } });
  });
});
