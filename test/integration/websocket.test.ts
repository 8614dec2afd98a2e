import { once } from "node:events";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { print } from "graphql";
import type { Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, signUp, PASSWORD, type TestStack } from "../helpers/stack";
import { openSubscription, withTimeout } from "../helpers/ws";
import { BackupChangedDocument, LogInDocument, LogOutDocument, LogOutEverywhereDocument } from "../../src/client/generated/graphql";

const newBackup = (stack: TestStack, userId: string, sourceName = "srv-1") =>
  stack.rt.services.backups.create(userId, { sourceName, imageSize: 64 * 1024 * 1024, kind: "FULL" as never });

describe("subscriptions over WebSocket (graphql-ws on /graphql)", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.stop());

  it("delivers the user's own backup changes, and only theirs", async () => {
    const alice = await signUp(stack);
    const bob = await signUp(stack);
    const sub = openSubscription(alice.client, BackupChangedDocument);
    await sub.connected;
    await new Promise((r) => setTimeout(r, 150)); // let the subscribe message reach the server
    await newBackup(stack, bob.id, "bob-server");
    const mine = await newBackup(stack, alice.id, "alice-server");
    const [first] = await sub.waitFor(1);
    expect(first!.errors).toBeUndefined();
    expect(first!.data!.backupChanged).toMatchObject({ id: mine.id, sourceName: "alice-server", status: "UPLOADING" });
    await new Promise((r) => setTimeout(r, 200));
    expect(sub.results).toHaveLength(1);
    await sub.dispose();
  });

  it("refuses an anonymous subscription with UNAUTHENTICATED", async () => {
    const sub = openSubscription(stack.client, BackupChangedDocument);
    const end = await withTimeout(sub.ended, 5000, "anonymous subscription to end");
    const errors = end.error as { extensions?: { code?: string } }[];
    expect(Array.isArray(errors) ? errors[0]!.extensions!.code : undefined).toBe("UNAUTHENTICATED");
    await sub.dispose();
  });

  it("closes the connection with 4401 for a malformed or unknown token", async () => {
    for (const token of ["nonsense", "rcl_" + "B".repeat(43)]) {
      const sub = openSubscription(stack.client.withToken(token), BackupChangedDocument);
      const end = await withTimeout(sub.ended, 5000, "bad token close");
      expect(end.code).toBe(4401);
      expect(end.reason).toMatch(/token/i);
      await sub.dispose();
    }
  });

  it("logOut closes that session's open subscriptions at once, not the user's other sessions", async () => {
    const u = await signUp(stack);
    const other = stack.client.withToken((await stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).logIn.token);
    const a = openSubscription(u.client, BackupChangedDocument);
    const b = openSubscription(other, BackupChangedDocument);
    await Promise.all([a.connected, b.connected]);
    await u.client.request(LogOutDocument);
    const end = await withTimeout(a.ended, 5000, "revoked subscription to close");
    expect(end.code).toBe(4401);
    expect(end.reason).toMatch(/revoked/);
    // The other session still receives events.
    await new Promise((r) => setTimeout(r, 100));
    const backup = await newBackup(stack, u.id);
    const [event] = await b.waitFor(1);
    expect(event!.data!.backupChanged.id).toBe(backup.id);
    await b.dispose();
    await a.dispose();
  });

  it("logOutEverywhere closes every open subscription of the user", async () => {
    const u = await signUp(stack);
    const subs = [openSubscription(u.client, BackupChangedDocument), openSubscription(u.client, BackupChangedDocument)];
    await Promise.all(subs.map((s) => s.connected));
    await u.client.request(LogOutEverywhereDocument);
    for (const s of subs) {
      expect((await withTimeout(s.ended, 5000, "close after logOutEverywhere")).code).toBe(4401);
      await s.dispose();
    }
    expect(stack.app.sockets.size).toBe(0);
  });
});

describe("token expiry on an open WebSocket", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ TOKEN_TTL: "1500ms" });
  });
  afterAll(() => stack.stop());

  it("closes the connection when the token expires", async () => {
    const u = await signUp(stack);
    const sub = openSubscription(u.client, BackupChangedDocument);
    await sub.connected;
    const t0 = Date.now();
    const end = await withTimeout(sub.ended, 5000, "expiry close");
    expect(end.code).toBe(4401);
    expect(end.reason).toMatch(/expired/i);
    expect(Date.now() - t0).toBeLessThan(2500);
    await sub.dispose();
  });
});

describe("two API processes sharing Redis", () => {
  let a: TestStack;
  let b: TestStack;
  beforeAll(async () => {
    a = await startStack({ REDIS_URL: "redis://127.0.0.1:6379" });
    b = await startStack({ REDIS_URL: "redis://127.0.0.1:6379" });
  });
  afterAll(async () => {
    await a.stop();
    await b.stop();
  });

  it("a change made through one is pushed by the other, and logOut on one closes sockets on the other", async () => {
    expect(a.rt.events.transport).toBe("redis");
    const u = await signUp(a);
    const onB = openSubscription(b.client.withToken(u.token), BackupChangedDocument);
    await onB.connected;
    await new Promise((r) => setTimeout(r, 200));
    const backup = await newBackup(a, u.id);
    const [event] = await onB.waitFor(1);
    expect(event!.data!.backupChanged.id).toBe(backup.id);

    await u.client.request(LogOutDocument); // through API process A
    const end = await withTimeout(onB.ended, 15_000, "cross-process revocation").catch((err: unknown) => {
      console.error(`process B sockets: ${b.app.sockets.size}\n${b.logs.slice(-20).join("\n")}`);
      throw err;
    });
    expect(end.code).toBe(4401);
    await onB.dispose();
  });
});

describe("WebSocket abuse limits", () => {
  let stack: TestStack;
  const gc = (() => {
    v8.setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  })();
  const heapAfterGc = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };

  beforeAll(async () => {
    stack = await startStack({ WS_INIT_TIMEOUT: "300ms", WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: "2", WS_MAX_SUBSCRIPTIONS_PER_USER: "3" });
  });
  afterAll(() => stack.stop());

  /** Subscribes on an existing graphql-ws client and records how it ends. */
  function subscribeOn(client: Client, query: string) {
    const results: unknown[] = [];
    let unsubscribe!: () => void;
    const ended = new Promise<{ error?: unknown }>((resolve) => {
      unsubscribe = client.subscribe({ query }, { next: (v) => void results.push(v), error: (error) => resolve({ error }), complete: () => resolve({}) });
    });
    return { results, ended, unsubscribe };
  }
  const limitOf = (end: { error?: unknown }) => (Array.isArray(end.error) ? (end.error[0] as { extensions?: Record<string, unknown> }).extensions : undefined);

  it("closes a connection that sends no connection_init within WS_INIT_TIMEOUT (4408)", async () => {
    const socket = new WebSocket(stack.app.wsUrl, "graphql-transport-ws");
    const opened = Date.now();
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
    const [code] = await withTimeout(once(socket, "close") as Promise<[number, Buffer]>, 10_000, "init timeout close");
    expect(code).toBe(4408);
    const elapsed = Date.now() - opened;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2500); // graphql-ws's own default would be 3 s
  });

  it("does not parse or keep a 1 MB anonymous subscribe", async () => {
    // ~1 MB of fields: parsed and cached this held ~50 MB of AST each.
    const query = `subscription { backupChanged { ${"id ".repeat(330_000)}} }`;
    expect(query.length).toBeGreaterThan(990_000);
    const before = heapAfterGc();
    for (let i = 0; i < 3; i++) {
      const client = stack.client.ws();
      const end = await withTimeout(subscribeOn(client, query + " ".repeat(i)).ended, 30_000, "anonymous subscribe refused");
      expect(limitOf(end)?.code).toBe("UNAUTHENTICATED");
      await client.dispose();
    }
    const grown = heapAfterGc() - before;
    expect(grown, `heap grew by ${(grown / 1e6).toFixed(1)} MB`).toBeLessThan(20e6);
    expect(stack.app.wsDocuments.size).toBe(0);
    expect(stack.app.wsDocuments.bytes).toBe(0);
  });

  it("refuses a 1 MB document from a signed-in connection at the token limit, without caching it", async () => {
    const u = await signUp(stack);
    const client = u.client.ws();
    const ok = subscribeOn(client, print(BackupChangedDocument));
    await expect.poll(() => stack.app.wsUsers.operations(u.id), { timeout: 10_000 }).toBe(1);
    const bytesBefore = stack.app.wsDocuments.bytes;
    expect(bytesBefore).toBeGreaterThan(0); // the small document is kept for reuse
    const big = await withTimeout(subscribeOn(client, `subscription { backupChanged { ${"id ".repeat(330_000)}} }`).ended, 10_000, "big subscribe refused");
    expect(limitOf(big)).toMatchObject({ code: "BAD_USER_INPUT", limit: "TOKENS" });
    expect(stack.app.wsDocuments.bytes).toBe(bytesBefore);
    expect(stack.app.wsDocuments.bytes).toBeLessThanOrEqual(stack.config.ws.documentCacheBytes);
    expect(ok.results).toEqual([]);
    await client.dispose();
  });

  it("caps operations per connection (WS_MAX_SUBSCRIPTIONS_PER_CONNECTION) and frees the slot when one completes", async () => {
    const u = await signUp(stack);
    const client = u.client.ws();
    const query = print(BackupChangedDocument);
    const first = subscribeOn(client, query);
    const second = subscribeOn(client, query);
    const third = await withTimeout(subscribeOn(client, query).ended, 5000, "third subscription refused");
    expect(limitOf(third)).toMatchObject({ code: "BAD_USER_INPUT", limit: "SUBSCRIPTIONS_PER_CONNECTION", maxSubscriptionsPerConnection: 2 });
    // Completing one frees its slot on the same connection.
    first.unsubscribe();
    await withTimeout(first.ended, 5000, "first subscription completed");
    const replacement = subscribeOn(client, query);
    await expect.poll(() => stack.app.wsUsers.operations(u.id), { timeout: 10_000 }).toBe(2);
    const backup = await newBackup(stack, u.id);
    await expect.poll(() => replacement.results.length, { timeout: 10_000 }).toBe(1);
    expect((replacement.results[0] as { data: { backupChanged: { id: string } } }).data.backupChanged.id).toBe(backup.id);
    // Both live subscriptions get the change; each delivery is its own message, so wait for it.
    await expect.poll(() => second.results.length, { timeout: 10_000 }).toBe(1);
    expect(first.results).toEqual([]);
    await client.dispose();
  });

  it("caps operations per user across connections (WS_MAX_SUBSCRIPTIONS_PER_USER)", async () => {
    const u = await signUp(stack);
    const a = u.client.ws();
    const b = u.client.ws();
    const query = print(BackupChangedDocument);
    subscribeOn(a, query);
    subscribeOn(a, query);
    // The two connections race: let A's operations register before B's.
    await expect.poll(() => stack.app.wsUsers.operations(u.id), { timeout: 10_000 }).toBe(2);
    const onB = subscribeOn(b, query);
    await expect.poll(() => stack.app.wsUsers.operations(u.id), { timeout: 10_000 }).toBe(3);
    const fourth = await withTimeout(subscribeOn(b, query).ended, 5000, "fourth subscription refused");
    expect(limitOf(fourth)).toMatchObject({ code: "BAD_USER_INPUT", limit: "SUBSCRIPTIONS_PER_USER", maxSubscriptionsPerUser: 3 });
    // Another user is not affected.
    const other = await signUp(stack);
    const c = other.client.ws();
    const theirs = subscribeOn(c, query);
    expect(stack.app.wsUsers.operations(u.id)).toBe(3);
    // Closing connection A frees its two slots for the user.
    await a.dispose();
    await expect.poll(() => stack.app.wsUsers.operations(u.id), { timeout: 10_000 }).toBe(1);
    const later = subscribeOn(b, query);
    await expect.poll(() => stack.app.wsUsers.operations(u.id), { timeout: 10_000 }).toBe(2);
    await expect.poll(() => stack.app.wsUsers.operations(other.id), { timeout: 10_000 }).toBe(1);
    const backup = await newBackup(stack, u.id);
    await newBackup(stack, other.id);
    await expect.poll(() => later.results.length, { timeout: 10_000 }).toBe(1);
    expect((later.results[0] as { data: { backupChanged: { id: string } } }).data.backupChanged.id).toBe(backup.id);
    expect(onB.results).toHaveLength(1);
    await expect.poll(() => theirs.results.length, { timeout: 10_000 }).toBe(1);
    await b.dispose();
    await c.dispose();
  });
});
