import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, signUp, PASSWORD, type TestStack } from "./helpers/stack";
import { openSubscription, withTimeout } from "./helpers/ws";
import { BackupChangedDocument, LogInDocument, LogOutDocument, LogOutEverywhereDocument } from "../src/client/generated/graphql";

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
    expect(a.rt.pubSub.transport).toBe("redis");
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
