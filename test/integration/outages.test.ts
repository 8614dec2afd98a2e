import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { eq } from "drizzle-orm";
import { startStack, signUp, PASSWORD, type TestStack, type TestUser } from "../helpers/stack";
import { cuttableProxy, type CuttableProxy } from "../helpers/proxy";
import { backupImage, makeImage, MiB } from "../helpers/backup";
import { CreateBackupDocument, LogInDocument, MeDocument, RecoveriesDocument, RecoveryProgressDocument, RequestChunkUploadsDocument, StartRecoveryDocument } from "../../src/client/generated/graphql";
import { GraphQLRequestError, subscribe } from "../../src/client/graphql-client";
import { createDatabase } from "../../src/db/client";
import { sessions } from "../../src/db/schema";
import { createLogger } from "../../src/logger";
import { Writable } from "node:stream";

/**
 * Each dependency cut for real (a TCP proxy in front of the running MariaDB, Temporal, versitygw or
 * Redis refuses connections): the API answers UNAVAILABLE with the dependency and retryAfter, in
 * well under a second, /readyz answers from its background checks at once, and the service is
 * back within two seconds of the dependency's return.
 */

const READYZ_MS = 50;
const FAST_MS = 1000;
const BACK_MS = 2000;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

type Readyz = { status: string; checks: Record<string, { ok: boolean; error?: string }> };
let probes = 0;
/** /readyz, with the time the server spent on it (its access log's `ms`: what a loaded test machine adds around it is not the server's). */
async function readyz(stack: TestStack): Promise<{ status: number; body: Readyz; ms: number }> {
  const requestId = `readyz-${process.pid}-${++probes}`;
  const res = await fetch(`${stack.app.url}/readyz`, { headers: { "x-request-id": requestId } });
  const value = { status: res.status, body: (await res.json()) as Readyz };
  const line = await until("the access log line", async () => stack.logs.find((l) => l.includes(`"requestId":"${requestId}"`) && l.includes('"http request"')));
  return { ...value, ms: (JSON.parse(line) as { ms: number }).ms };
}

/** Waits until /readyz reports `check` as `ok`. */
const readyzSays = (stack: TestStack, check: string, ok: boolean) => until(`readyz ${check}=${ok}`, async () => ((await readyz(stack)).body.checks[check]?.ok === ok ? true : undefined));

/** The typed UNAVAILABLE error of a failed call. */
async function refusal(call: () => Promise<unknown>): Promise<{ err: GraphQLRequestError; ms: number }> {
  const t0 = performance.now();
  try {
    await call();
  } catch (err) {
    if (!(err instanceof GraphQLRequestError)) throw err;
    return { err, ms: performance.now() - t0 };
  }
  throw new Error("the call succeeded");
}

function expectUnavailable(err: GraphQLRequestError, dependency: string): void {
  expect(err.code).toBe("UNAVAILABLE");
  expect(err.errors[0]!.extensions).toMatchObject({ code: "UNAVAILABLE", dependency, retryAfter: expect.any(Number) });
  expect(err.errors[0]!.extensions!.retryAfter as number).toBeGreaterThan(0);
}

/** How long after `restore()` `works` first succeeds. */
async function backAfterRestore(proxy: CuttableProxy, works: () => Promise<unknown>): Promise<number> {
  await proxy.restore();
  const t0 = performance.now();
  await until("the service to be back", () => works().then(
    () => true,
    () => undefined,
  ));
  return performance.now() - t0;
}

function withPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

describe("database down", () => {
  let proxy: CuttableProxy;
  let stack: TestStack;
  let user: TestUser;
  beforeAll(async () => {
    proxy = await cuttableProxy(Number(new URL(inject("databaseUrl")).port || 3306));
    stack = await startStack({ DATABASE_URL: withPort(inject("databaseUrl"), proxy.port) });
    user = await signUp(stack);
  });
  afterAll(async () => {
    await proxy.restore().catch(() => undefined);
    await stack.stop();
    await proxy.close();
  });

  it("a request in the moment of the cut is UNAVAILABLE (not INTERNAL), then every request is refused at once with 503 and Retry-After", async () => {
    await proxy.cut();
    // Before the background check knows: the pool's connections fail, which opens the breaker.
    const first = await refusal(() => user.client.request(MeDocument));
    expectUnavailable(first.err, "DATABASE");
    await readyzSays(stack, "database", false);

    for (let i = 0; i < 3; i++) {
      const { value: res, ms } = await timed(() =>
        fetch(stack.app.graphqlUrl, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` },
          body: JSON.stringify({ query: "{ me { id } }" }),
        }),
      );
      const body = (await res.json()) as { errors: { message: string; extensions: Record<string, unknown> }[] };
      expect(ms).toBeLessThan(FAST_MS);
      expect(res.status).toBe(503);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(body.errors[0]!.extensions).toMatchObject({ code: "UNAVAILABLE", dependency: "DATABASE", retryAfter: Number(res.headers.get("retry-after")) });
      expect(body.errors[0]!.message).toMatch(/database is unavailable/i);
    }
    // Anonymous calls that need the database are refused the same way (in the resolver: HTTP 200 with the error).
    const anon = await refusal(() => stack.client.request(LogInDocument, { input: { email: user.email, password: PASSWORD } }));
    expectUnavailable(anon.err, "DATABASE");
    expect(anon.ms).toBeLessThan(FAST_MS);

    const r = await readyz(stack);
    expect(r.status).toBe(503);
    expect(r.ms).toBeLessThan(READYZ_MS);
    expect(r.body.checks.database).toMatchObject({ ok: false, error: expect.stringMatching(/ECONNREFUSED/) });

    const ms = await backAfterRestore(proxy, () => user.client.request(MeDocument));
    expect(ms).toBeLessThan(BACK_MS);
    expect((await readyz(stack)).status).toBe(200);
  });

  it("logs name the cause (ECONNREFUSED) and never a query's parameters", async () => {
    const tokenHash = createHash("sha256").update(user.token).digest("hex");
    await proxy.cut();
    try {
      // A query through drizzle against the cut port: a real DrizzleQueryError (its params: the token's hash).
      const direct = createDatabase(withPort(inject("databaseUrl"), proxy.port), 1);
      const err = await direct.db
        .select()
        .from(sessions)
        .where(eq(sessions.tokenHash, tokenHash))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      await direct.close();
      expect(err).toBeInstanceOf(Error);
      expect(String((err as Error).message)).toContain(tokenHash); // drizzle's own message carries the params…
      const lines: string[] = [];
      const logger = createLogger(
        "info",
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            lines.push(chunk.toString("utf8"));
            cb();
          },
        }),
      );
      logger.error({ err }, "query failed");
      const line = lines.join("");
      // …the log does not, and says why it failed.
      expect(line).not.toContain(tokenHash);
      expect(line).toContain("ECONNREFUSED");
      expect(line).toContain("Failed query: select");

      // The API's own logs of this outage: the cause, never the hash or the e-mail address. (A query
      // that reads the database: `me` alone may be answered from the session cache.)
      await refusal(() => user.client.request(RecoveriesDocument, { first: 10 }));
      await readyzSays(stack, "database", false);
      await refusal(() => user.client.request(RecoveriesDocument, { first: 10 }));
    } finally {
      await proxy.restore();
    }
    await readyzSays(stack, "database", true);
    const all = stack.logs.join("\n");
    expect(all).toContain("ECONNREFUSED");
    expect(all).not.toContain(tokenHash);
    expect(all).not.toContain(user.email);
    expect(all).not.toMatch(/"code":"INTERNAL"|unexpected error|internal error/);
  });
});

describe("Temporal down", () => {
  let proxy: CuttableProxy;
  let stack: TestStack;
  let user: TestUser;
  let backupId: string;
  beforeAll(async () => {
    proxy = await cuttableProxy(7233);
    stack = await startStack({ TEMPORAL_ADDRESS: `127.0.0.1:${proxy.port}` });
    user = await signUp(stack);
    backupId = (await backupImage(stack, user.id, makeImage(MiB, MiB), { sourceName: "outage-temporal" })).backup.id;
  });
  afterAll(async () => {
    await proxy.restore().catch(() => undefined);
    await stack.stop();
    await proxy.close();
  });

  const recoveriesOf = async () => (await user.client.request(RecoveriesDocument, { first: 10 })).recoveries.totalCount;

  it("startRecovery is refused at once with UNAVAILABLE and leaves no recovery behind", async () => {
    await proxy.cut();
    await readyzSays(stack, "temporal", false);
    const r = await readyz(stack);
    expect(r.ms).toBeLessThan(READYZ_MS);
    expect(r.status).toBe(503);
    for (let i = 0; i < 3; i++) {
      const { err, ms } = await refusal(() => user.client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } }));
      expectUnavailable(err, "TEMPORAL");
      expect(ms).toBeLessThan(FAST_MS);
    }
    expect(await recoveriesOf()).toBe(0);

    const ms = await backAfterRestore(proxy, () => stack.rt.workflows.status(`no-such-workflow-${Date.now()}`));
    expect(ms).toBeLessThan(BACK_MS);
  });

  it("a start refused before the breaker knows (the moment of the cut) is UNAVAILABLE too, and its row is removed", async () => {
    await readyzSays(stack, "temporal", true);
    await proxy.cut();
    try {
      const { err, ms } = await refusal(() => user.client.request(StartRecoveryDocument, { input: { backupId, target: "LOCAL" } }));
      expectUnavailable(err, "TEMPORAL");
      // Bounded by the call deadline (3 s), not Temporal's retries (15–19 s before).
      expect(ms).toBeLessThan(4000);
      expect(await recoveriesOf()).toBe(0);
    } finally {
      await proxy.restore();
    }
    await readyzSays(stack, "temporal", true);
  });
});

describe("object store down", () => {
  let proxy: CuttableProxy;
  let stack: TestStack;
  let user: TestUser;
  beforeAll(async () => {
    proxy = await cuttableProxy(7070);
    stack = await startStack({ S3_ENDPOINT: `http://127.0.0.1:${proxy.port}` });
    user = await signUp(stack);
  });
  afterAll(async () => {
    await proxy.restore().catch(() => undefined);
    await stack.stop();
    await proxy.close();
  });

  it("a call that needs the store is UNAVAILABLE (OBJECT_STORE) at once; back within 2 s", async () => {
    const image = makeImage(MiB, MiB);
    const { createBackup } = await user.client.request(CreateBackupDocument, { input: { sourceName: "outage-s3", imageSize: image.length, kind: "FULL" } });
    const chunks = [{ index: 0, sha256: createHash("sha256").update(image).digest("hex"), size: image.length }];
    const ask = () => user.client.request(RequestChunkUploadsDocument, { input: { backupId: createBackup.id, chunks } });
    await proxy.cut();
    const first = await refusal(ask);
    expectUnavailable(first.err, "OBJECT_STORE");
    await readyzSays(stack, "s3", false);
    const r = await readyz(stack);
    expect(r.ms).toBeLessThan(READYZ_MS);
    for (let i = 0; i < 3; i++) {
      const { err, ms } = await refusal(ask);
      expectUnavailable(err, "OBJECT_STORE");
      expect(ms).toBeLessThan(FAST_MS);
    }
    const ms = await backAfterRestore(proxy, ask);
    expect(ms).toBeLessThan(BACK_MS);
    expect(stack.logs.join("\n")).not.toMatch(/"code":"INTERNAL"|unexpected error|internal error/);
  });
});

describe("Redis down", () => {
  let proxy: CuttableProxy;
  let stack: TestStack;
  let user: TestUser;
  beforeAll(async () => {
    proxy = await cuttableProxy(6379);
    stack = await startStack({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    user = await signUp(stack);
  });
  afterAll(async () => {
    await proxy.restore().catch(() => undefined);
    await stack.stop();
    await proxy.close();
  });

  it("logIn (rate-limited through Redis) and subscriptions are UNAVAILABLE (REDIS); back within 2 s", async () => {
    const logIn = () => stack.client.request(LogInDocument, { input: { email: user.email, password: PASSWORD } });
    await proxy.cut();
    await readyzSays(stack, "redis", false);
    const r = await readyz(stack);
    expect(r.ms).toBeLessThan(READYZ_MS);
    expect(r.body.checks.redis!.ok).toBe(false);
    for (let i = 0; i < 3; i++) {
      const { err, ms } = await refusal(logIn);
      expectUnavailable(err, "REDIS");
      expect(ms).toBeLessThan(FAST_MS);
    }
    const ws = user.client.ws();
    try {
      const it = subscribe(ws, RecoveryProgressDocument, { recoveryId: "00000000-0000-0000-0000-000000000000" });
      const failure = await it.next().then(
        (r) => r,
        (e: unknown) => e,
      );
      const errors = (Array.isArray(failure) ? failure : ((failure as { value?: { errors?: unknown[] } }).value?.errors ?? [])) as { extensions?: Record<string, unknown> }[];
      expect(errors[0]?.extensions).toMatchObject({ code: "UNAVAILABLE", dependency: "REDIS" });
    } finally {
      await ws.dispose();
    }
    const ms = await backAfterRestore(proxy, logIn);
    expect(ms).toBeLessThan(BACK_MS);
  });
});
