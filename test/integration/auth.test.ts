import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq, sql } from "drizzle-orm";
import { createHash } from "node:crypto";
import { startStack, signUp, uniqueName, PASSWORD, type TestStack, errorOf } from "../helpers/stack";
import { cuttableProxy, type CuttableProxy } from "../helpers/proxy";
import { LogInDocument, LogOutDocument, LogOutEverywhereDocument, MeDocument, RevokeSessionDocument, SessionsDocument, SignUpDocument } from "../../src/client/generated/graphql";
import { sessions, users } from "../../src/db/schema";

describe("accounts over HTTP", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "3", LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "1000" });
  });
  afterAll(() => stack.stop());

  it("signs up with a normalised e-mail and an argon2id hash; the token (from logIn) is stored only as its SHA-256", async () => {
    const name = uniqueName();
    const { signUp: accepted } = await stack.client.request(SignUpDocument, {
      input: { username: name, email: `  ${name.toUpperCase()}@Example.COM `, password: PASSWORD },
    });
    expect(accepted.accepted).toBe(true);
    const { logIn: result } = await stack.client.request(LogInDocument, { input: { email: `${name}@example.com`, password: PASSWORD } });
    expect(result.user.email).toBe(`${name.toLowerCase()}@example.com`);
    expect(result.token).toMatch(/^rcl_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(result.token.slice(4), "base64url")).toHaveLength(32);
    const ttl = new Date(result.expiresAt).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(59 * 86_400_000);
    expect(ttl).toBeLessThanOrEqual(60 * 86_400_000);

    const db = stack.rt.database.db;
    const [user] = await db.select().from(users).where(eq(users.id, result.user.id));
    expect(user!.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    const rows = await db.select().from(sessions).where(eq(sessions.userId, result.user.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.tokenHash).toBe(createHash("sha256").update(result.token).digest("hex"));
    expect(JSON.stringify(rows)).not.toContain(result.token.slice(4));
  });

  it("a registered e-mail (any case) is answered like a new one and leaves the account untouched; a taken username is CONFLICT", async () => {
    const u = await signUp(stack);
    const fresh = await stack.client.request(SignUpDocument, { input: { username: uniqueName(), email: `${uniqueName()}@example.com`, password: PASSWORD } });
    const dupEmail = await stack.client.request(SignUpDocument, { input: { username: uniqueName(), email: u.email.toUpperCase(), password: "another good passphrase" } });
    expect(dupEmail).toEqual(fresh);
    // The existing account keeps its password; the new one was not created.
    await expect(stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).resolves.toBeTruthy();
    const [{ n }] = (await stack.rt.database.db.select({ n: sql<number>`count(*)` }).from(users).where(eq(users.email, u.email))) as [{ n: number }];
    expect(Number(n)).toBe(1);
    const dupName = await errorOf(stack.client.request(SignUpDocument, { input: { username: u.username, email: `${uniqueName()}@example.com`, password: PASSWORD } }));
    expect(dupName.code).toBe("CONFLICT");
    expect(dupName.errors[0]!.extensions!.field).toBe("username");
  });

  it("enforces the password policy with a clear message", async () => {
    const name = uniqueName();
    const cases: [string, RegExp][] = [
      ["short", /at least 12 characters/],
      ["aaaaaaaaaaaaaaaa", /more than three different characters/],
      ["password1234", /commonly used/],
      [`my-${name}-secret!`, /username/],
    ];
    for (const [password, message] of cases) {
      const err = await errorOf(stack.client.request(SignUpDocument, { input: { username: name, email: `${name}@example.com`, password } }));
      expect(err.code).toBe("BAD_USER_INPUT");
      expect(err.message).toMatch(message);
      expect(err.errors[0]!.extensions!.field).toBe("password");
    }
    const badEmail = await errorOf(stack.client.request(SignUpDocument, { input: { username: name, email: "not-an-email", password: PASSWORD } }));
    expect(badEmail.code).toBe("BAD_USER_INPUT");
    expect(badEmail.message).toMatch(/E-mail/);
  });

  it("logs in, answers `me`, and gives the same error for an unknown e-mail and a wrong password", async () => {
    const u = await signUp(stack);
    const { logIn } = await stack.client.request(LogInDocument, { input: { email: u.email.toUpperCase(), password: PASSWORD } });
    expect(logIn.user.id).toBe(u.id);
    const me = await stack.client.withToken(logIn.token).request(MeDocument);
    expect(me.me).toMatchObject({ id: u.id, email: u.email, username: u.username });

    const wrong = await errorOf(stack.client.request(LogInDocument, { input: { email: u.email, password: "wrong password 123" } }));
    const unknown = await errorOf(stack.client.request(LogInDocument, { input: { email: `${uniqueName()}@example.com`, password: PASSWORD } }));
    expect(wrong.code).toBe("UNAUTHENTICATED");
    expect(unknown.errors).toEqual(wrong.errors);
  });

  it("rate-limits logIn per account, even for the right password, and says when to retry", async () => {
    const u = await signUp(stack);
    for (let i = 0; i < 3; i++) await errorOf(stack.client.request(LogInDocument, { input: { email: u.email, password: "wrong password 123" } }));
    const limited = await errorOf(stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } }));
    expect(limited.code).toBe("RATE_LIMITED");
    expect(limited.status).toBe(200);
    expect(limited.errors[0]!.extensions!.retryAfterSeconds).toBeGreaterThan(0);
    // Another account from the same address is not affected.
    const other = await signUp(stack);
    await expect(stack.client.request(LogInDocument, { input: { email: other.email, password: PASSWORD } })).resolves.toBeTruthy();
  });

  it("requires a token for `me`", async () => {
    const err = await errorOf(stack.client.request(MeDocument));
    expect(err.code).toBe("UNAUTHENTICATED");
  });

  it("rejects malformed and unknown tokens with 401 and the reason", async () => {
    for (const [token, reason] of [
      ["garbage", "MALFORMED"],
      ["rcl_" + "A".repeat(43), "UNKNOWN"],
    ] as const) {
      const { status, body } = await stack.client.withToken(token).execute(MeDocument);
      expect(status).toBe(401);
      expect(body.errors![0]!.extensions).toMatchObject({ code: "UNAUTHENTICATED", reason });
    }
    const res = await fetch(stack.app.graphqlUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Basic dXNlcjpwYXNz" },
      body: JSON.stringify({ query: "{ me { id } }" }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { errors: { extensions: { reason: string } }[] }).errors[0]!.extensions.reason).toBe("MALFORMED");
  });

  it("logOut revokes only this token, at once", async () => {
    const u = await signUp(stack);
    const second = await stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } });
    expect(await u.client.request(LogOutDocument)).toEqual({ logOut: true });
    const { status, body } = await u.client.execute(MeDocument);
    expect(status).toBe(401);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "UNAUTHENTICATED", reason: "REVOKED" });
    await expect(stack.client.withToken(second.logIn.token).request(MeDocument)).resolves.toMatchObject({ me: { id: u.id } });
  });

  it("logOutEverywhere revokes every token of the account and no other account's", async () => {
    const u = await signUp(stack);
    const other = await signUp(stack);
    const tokens = [u.token];
    for (let i = 0; i < 2; i++) tokens.push((await stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).logIn.token);
    expect(await u.client.request(LogOutEverywhereDocument)).toEqual({ logOutEverywhere: 3 });
    for (const token of tokens) {
      const { body } = await stack.client.withToken(token).execute(MeDocument);
      expect(body.errors![0]!.extensions!.reason).toBe("REVOKED");
    }
    await expect(other.client.request(MeDocument)).resolves.toMatchObject({ me: { id: other.id } });
  });

  it("lists the user's own sessions and revokes one by id; another user's session is NOT_FOUND", async () => {
    const u = await signUp(stack);
    const other = await signUp(stack);
    const second = await stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } });
    const { sessions: list } = await u.client.request(SessionsDocument, { first: 10 });
    expect(list.totalCount).toBe(2);
    expect(list.edges.filter((e) => e.node.current)).toHaveLength(1);
    const otherSession = list.edges.find((e) => !e.node.current)!.node.id;

    const stranger = await errorOf(other.client.request(RevokeSessionDocument, { id: otherSession }));
    expect(stranger.code).toBe("NOT_FOUND");
    await expect(stack.client.withToken(second.logIn.token).request(MeDocument)).resolves.toBeTruthy();

    const { revokeSession } = await u.client.request(RevokeSessionDocument, { id: otherSession });
    expect(revokeSession.revokedAt).not.toBeNull();
    const { body } = await stack.client.withToken(second.logIn.token).execute(MeDocument);
    expect(body.errors![0]!.extensions!.reason).toBe("REVOKED");
  });
});

/** Polls `check` every 10 ms until it answers true; fails after `ms` saying what was awaited. Returns the attempts it took. */
async function until(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<number> {
  const deadline = Date.now() + ms;
  for (let attempts = 1; ; attempts++) {
    if (await check()) return attempts;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("session cache across two API processes sharing Redis", () => {
  let a: TestStack;
  let b: TestStack;
  /** B reaches Redis through this proxy, so the test can cut B's event bus alone. */
  let redisForB: CuttableProxy;
  const reasonOn = async (stack: TestStack, token: string) => (await stack.client.withToken(token).execute(MeDocument)).body.errors?.[0]?.extensions?.reason;
  /** Revoked in the database only, behind the services' back: what a process still accepts then, it answered from memory. */
  const setRevokedInDb = (userId: string, revokedAt: Date | null) => a.rt.database.db.update(sessions).set({ revokedAt }).where(eq(sessions.userId, userId));
  const delivering = (stack: TestStack) => stack.rt.events.bus.delivery?.() !== undefined;

  beforeAll(async () => {
    redisForB = await cuttableProxy(6379);
    a = await startStack({ REDIS_URL: "redis://127.0.0.1:6379" });
    b = await startStack({ REDIS_URL: `redis://127.0.0.1:${redisForB.port}` });
    await until(() => delivering(a) && delivering(b), 5000, "both event buses confirm their subscriptions");
  });
  afterAll(async () => {
    await redisForB.restore().catch(() => undefined);
    await a.stop();
    await b.stop();
    await redisForB.close();
  });

  it("answers a token from memory, and logOut / logOutEverywhere in one process stop it at once in both", async () => {
    const u = await signUp(a);
    const second = (await a.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).logIn.token;
    for (const stack of [a, b]) for (const token of [u.token, second]) await expect(stack.client.withToken(token).request(MeDocument)).resolves.toMatchObject({ me: { id: u.id } });
    // Revoked behind the services' back: both processes still answer from memory (within SESSION_CACHE_TTL).
    await setRevokedInDb(u.id, new Date());
    for (const stack of [a, b]) expect(await reasonOn(stack, u.token)).toBeUndefined();
    await setRevokedInDb(u.id, null);

    // logOut through A: refused by A on the next request, and by B as soon as the event arrives.
    await expect(u.client.request(LogOutDocument)).resolves.toEqual({ logOut: true });
    expect(await reasonOn(a, u.token)).toBe("REVOKED");
    await until(async () => (await reasonOn(b, u.token)) === "REVOKED", 1000, "B refuses the logged-out token");
    // The other session is untouched in both.
    for (const stack of [a, b]) expect(await reasonOn(stack, second)).toBeUndefined();

    // logOutEverywhere through B (three sessions, each cached in both processes).
    const third = (await a.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).logIn.token;
    const fourth = (await a.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).logIn.token;
    const live = [second, third, fourth];
    for (const stack of [a, b]) for (const token of live) expect(await reasonOn(stack, token)).toBeUndefined();
    expect(await b.client.withToken(third).request(LogOutEverywhereDocument)).toEqual({ logOutEverywhere: 3 });
    for (const token of live) expect(await reasonOn(b, token)).toBe("REVOKED");
    for (const token of live) await until(async () => (await reasonOn(a, token)) === "REVOKED", 1000, "A refuses every token after logOutEverywhere on B");
  });

  it("serves nothing from memory while the event bus is down, nor afterwards what it cached before", async () => {
    const u = await signUp(a);
    expect(await reasonOn(b, u.token)).toBeUndefined();
    await setRevokedInDb(u.id, new Date());
    expect(await reasonOn(b, u.token)).toBeUndefined(); // from B's memory

    await redisForB.cut();
    await until(() => !delivering(b), 5000, "B's event bus reports the outage");
    // A revocation B may not have heard: the database answers.
    expect(await reasonOn(b, u.token)).toBe("REVOKED");
    await setRevokedInDb(u.id, null);
    expect(await reasonOn(b, u.token)).toBeUndefined();
    expect(b.rt.services.auth.sessionCache.size).toBe(0); // nothing stored while down

    await redisForB.restore();
    await until(() => delivering(b), 10_000, "B's event bus is back");
    await setRevokedInDb(u.id, new Date());
    expect(await reasonOn(b, u.token)).toBe("REVOKED"); // nothing from before the outage is served
    await setRevokedInDb(u.id, null);
    expect(await reasonOn(b, u.token)).toBeUndefined();
    expect(b.rt.services.auth.sessionCache.size).toBeGreaterThan(0); // cached again
    await b.client.withToken(u.token).request(LogOutDocument);
    expect(await reasonOn(b, u.token)).toBe("REVOKED");
    await until(async () => (await reasonOn(a, u.token)) === "REVOKED", 1000, "A refuses the token logged out on B after the outage");
  });
});

describe("token lifetime", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ TOKEN_TTL: "1500ms" });
  });
  afterAll(() => stack.stop());

  it("is enforced at every request", async () => {
    const u = await signUp(stack);
    await expect(u.client.request(MeDocument)).resolves.toMatchObject({ me: { id: u.id } });
    await new Promise((r) => setTimeout(r, 1700));
    const { status, body } = await u.client.execute(MeDocument);
    expect(status).toBe(401);
    expect(body.errors![0]!.extensions).toMatchObject({ code: "UNAUTHENTICATED", reason: "EXPIRED" });
    // Purging removes the expired session row.
    expect(await stack.rt.services.auth.purgeSessions()).toBeGreaterThanOrEqual(1);
  });
});

describe("per-address login limit", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "4", LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: "100" });
  });
  afterAll(() => stack.stop());

  it("limits attempts across accounts from one address", async () => {
    const codes: (string | undefined)[] = [];
    for (let i = 0; i < 6; i++) {
      codes.push((await errorOf(stack.client.request(LogInDocument, { input: { email: `${uniqueName()}@example.com`, password: "whatever it is 1" } }))).code);
    }
    expect(codes.slice(0, 4)).toEqual(Array(4).fill("UNAUTHENTICATED"));
    expect(codes.slice(4)).toEqual(["RATE_LIMITED", "RATE_LIMITED"]);
  });
});
