import { eq } from "drizzle-orm";
import { Redis } from "ioredis";
import WebSocket from "ws";
import { print } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { openSubscription, withTimeout, type Subscription } from "../helpers/ws";
import { backups } from "../../src/db/schema";
import { RecoveryProgressDocument, type RecoveryProgressSubscription } from "../../src/client/generated/graphql";

/**
 * recoveryProgress over WebSocket is executed once per event for all subscribers of the same
 * document, variables and user (src/server/ws-fanout.ts), on one event-bus listener and one worker
 * probe per recovery (RecoveryService.feeds).
 */

async function completedBackup(stack: TestStack, userId: string): Promise<string> {
  const b = await stack.rt.services.backups.create(userId, { sourceName: "fanout", imageSize: 1 << 20, kind: "FULL" as never });
  await stack.rt.database.db.update(backups).set({ status: "COMPLETED" }).where(eq(backups.id, b.id));
  return b.id;
}

const versions = (sub: Subscription<RecoveryProgressSubscription>) => sub.results.map((r) => r.data?.recoveryProgress.version);
const states = (sub: Subscription<RecoveryProgressSubscription>) => sub.results.map((r) => r.data?.recoveryProgress.state);
const until = async (cond: () => boolean | Promise<boolean>, what: string, ms = 5000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
/** Timers and sockets this process holds (what a leaked subscription would keep). */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("recoveryProgress fan-out over WebSocket", () => {
  let stack: TestStack;
  let alice: TestUser;
  let bob: TestUser;
  let backupId: string;
  beforeAll(async () => {
    stack = await startStack();
    [alice, bob] = await Promise.all([signUp(stack), signUp(stack)]);
    backupId = await completedBackup(stack, alice.id);
  });
  afterAll(() => stack.stop());

  const newRecovery = () => stack.rt.services.recoveries.create(alice.id, { backupId, target: "LOCAL" });
  const watch = (user: TestUser, recoveryId: string) => openSubscription(user.client, RecoveryProgressDocument, { recoveryId });

  it("two subscribers of one recovery share one execution and get the same versions in order, then complete", async () => {
    const r = await newRecovery();
    const a = watch(alice, r.id);
    const b = watch(alice, r.id);
    await Promise.all([a.waitFor(1), b.waitFor(1)]);
    expect(stack.app.wsFanout.size).toBe(1);
    expect(stack.app.wsFanout.subscribers).toBe(2);
    expect(stack.rt.services.recoveries.feeds.size).toBe(1);

    const progress = stack.rt.services.recoveryProgress;
    await progress.begin(r.id, new Date(Date.now() + 60_000));
    await progress.enter(r.id, "PREPARING", "composing");
    for (let p = 10; p <= 100; p += 10) await progress.progress(r.id, "PREPARING", p, `composed ${p} %`);
    await progress.enter(r.id, "IMPORTING", "importing");
    await progress.finish(r.id, "COMPLETED", { message: "done" });
    await Promise.all([withTimeout(a.ended, 5000, "a completes"), withTimeout(b.ended, 5000, "b completes")]);

    expect(a.results.every((x) => !x.errors)).toBe(true);
    expect(versions(a)).toEqual(versions(b));
    const v = versions(a) as number[];
    expect([...v].sort((x, y) => x - y)).toEqual(v);
    expect(new Set(v).size).toBe(v.length);
    expect(states(a)[0]).toBe("PENDING");
    expect(states(a).at(-1)).toBe("COMPLETED");
    expect(a.results.at(-1)!.data!.recoveryProgress.version).toBe((await stack.rt.services.recoveries.get(alice.id, r.id)).version);
    await until(() => stack.app.wsFanout.size === 0 && stack.rt.services.recoveries.feeds.size === 0, "the shared execution and the feed to go");
    await Promise.all([a.dispose(), b.dispose()]);
  });

  it("refuses a subscriber of another user's recovery at subscribe time, and keeps nothing for it", async () => {
    const r = await newRecovery();
    const owner = watch(alice, r.id);
    await owner.waitFor(1);
    const intruder = watch(bob, r.id);
    await withTimeout(intruder.ended, 5000, "the intruder to be refused");
    // Refused as before the fan-out: one result with the field's error, no data, then complete.
    expect(intruder.results).toHaveLength(1);
    expect(intruder.results[0]!.data ?? null).toBeNull();
    expect(intruder.results[0]!.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    // The owner's execution is untouched and the intruder joined nothing.
    expect(stack.app.wsFanout.subscribers).toBe(1);
    await stack.rt.services.recoveryProgress.enter(r.id, "PREPARING", "composing");
    await owner.waitFor(2);
    expect(states(owner)).toEqual(["PENDING", "PREPARING"]);
    await Promise.all([owner.dispose(), intruder.dispose()]);
    await until(() => stack.app.wsFanout.size === 0 && stack.rt.services.recoveries.feeds.size === 0, "nothing left");
  });

  it("a late subscriber gets the current state first, then the same changes as the early one", async () => {
    const r = await newRecovery();
    const early = watch(alice, r.id);
    await early.waitFor(1);
    const progress = stack.rt.services.recoveryProgress;
    await progress.enter(r.id, "PREPARING", "composing");
    await progress.enter(r.id, "IMPORTING", "importing");
    await early.waitFor(3);
    const late = watch(alice, r.id);
    const [first] = await late.waitFor(1);
    expect(first!.data!.recoveryProgress).toMatchObject({ state: "IMPORTING", version: early.results.at(-1)!.data!.recoveryProgress.version });
    await progress.enter(r.id, "LAUNCHING", "launching");
    await Promise.all([early.waitFor(4), late.waitFor(2)]);
    expect(versions(late)).toEqual(versions(early).slice(-2));
    await Promise.all([early.dispose(), late.dispose()]);
  });

  it("unsubscribing one subscriber does not affect the other", async () => {
    const r = await newRecovery();
    const stays = watch(alice, r.id);
    const goes = watch(alice, r.id);
    await Promise.all([stays.waitFor(1), goes.waitFor(1)]);
    await goes.dispose();
    await until(() => stack.app.wsFanout.subscribers === 1, "the closed subscriber to leave");
    const progress = stack.rt.services.recoveryProgress;
    await progress.enter(r.id, "PREPARING", "composing");
    await progress.finish(r.id, "FAILED", { failureReason: "TEST", message: "ended" });
    await withTimeout(stays.ended, 5000, "the remaining subscriber completes");
    expect(states(stays)).toEqual(["PENDING", "PREPARING", "FAILED"]);
    expect(goes.results).toHaveLength(1);
    await stays.dispose();
  });

  it("sends each shared result as graphql-ws's next frame to every operation, and nothing after the client completed one", async () => {
    const r = await newRecovery();
    // Two operations of one connection and a third on another: three members of one shared execution.
    const frames: { socket: number; text: string; binary: boolean }[] = [];
    const open = async (n: number) => {
      const ws = new WebSocket(stack.app.wsUrl, "graphql-transport-ws");
      ws.on("message", (data, binary) => frames.push({ socket: n, text: String(data), binary }));
      await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
      ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${alice.token}` } }));
      await until(() => frames.some((f) => f.socket === n && JSON.parse(f.text).type === "connection_ack"), "connection_ack");
      return ws;
    };
    const [ws1, ws2] = await Promise.all([open(1), open(2)]);
    const subscribe = (ws: WebSocket, id: string) => ws.send(JSON.stringify({ id, type: "subscribe", payload: { query: print(RecoveryProgressDocument), variables: { recoveryId: r.id } } }));
    subscribe(ws1, "a");
    subscribe(ws1, "b");
    subscribe(ws2, "c");
    const nexts = (id: string) => frames.filter((f) => JSON.parse(f.text).id === id && JSON.parse(f.text).type === "next");
    await until(() => ["a", "b", "c"].every((id) => nexts(id).length === 1), "the current state on each operation");
    expect(stack.app.wsFanout.size).toBe(1);
    expect(stack.app.wsFanout.subscribers).toBe(3);

    const progress = stack.rt.services.recoveryProgress;
    await progress.enter(r.id, "PREPARING", "composing");
    await until(() => ["a", "b", "c"].every((id) => nexts(id).length === 2), "the change on each operation");
    // Exactly the frame graphql-ws sends ({"id","type":"next","payload"}), the same payload for all.
    for (const id of ["a", "b", "c"]) {
      const [, second] = nexts(id);
      const message = JSON.parse(second!.text) as { id: string; type: string; payload: { data: { recoveryProgress: { state: string } } } };
      expect(Object.keys(message)).toEqual(["id", "type", "payload"]);
      expect(message).toMatchObject({ id, type: "next", payload: { data: { recoveryProgress: { state: "PREPARING" } } } });
      expect(message.payload).not.toHaveProperty("errors");
      expect(second!.text).toBe(`{"id":"${id}","type":"next","payload":${JSON.stringify(message.payload)}}`);
    }
    expect(new Set(["a", "b", "c"].map((id) => JSON.stringify(JSON.parse(nexts(id)[1]!.text).payload))).size).toBe(1);
    // Text messages, as graphql-ws sends them (a browser would get a Blob for a binary one).
    expect(frames.filter((f) => f.binary)).toEqual([]);

    // The client completes "a": no next for "a" after that; "b" on the same socket and "c" go on.
    ws1.send(JSON.stringify({ id: "a", type: "complete" }));
    await until(() => stack.app.wsFanout.subscribers === 2, "a to leave");
    await progress.enter(r.id, "IMPORTING", "importing");
    await progress.finish(r.id, "COMPLETED", { message: "done" });
    const completes = (id: string) => frames.filter((f) => JSON.parse(f.text).id === id && JSON.parse(f.text).type === "complete").length;
    await until(() => completes("b") === 1 && completes("c") === 1, "b and c to complete");
    expect(nexts("a")).toHaveLength(2);
    for (const id of ["b", "c"]) {
      const mine = frames.filter((f) => JSON.parse(f.text).id === id).map((f) => JSON.parse(f.text) as { type: string; payload?: { data: { recoveryProgress: { state: string } } } });
      // In order, then complete last (graphql-ws sends it when the stream ends, after every next).
      expect(mine.map((m) => m.type)).toEqual(["next", "next", "next", "next", "complete"]);
      expect(mine.slice(0, 4).map((m) => m.payload!.data.recoveryProgress.state)).toEqual(["PENDING", "PREPARING", "IMPORTING", "COMPLETED"]);
    }
    expect(completes("a")).toBe(0);
    ws1.close();
    ws2.close();
    await until(() => stack.app.wsFanout.size === 0 && stack.rt.services.recoveries.feeds.size === 0 && stack.app.sockets.size === 0, "nothing left");
  });

  it("subscribe/close cycles leave no shared execution, feed, listener or timer behind", async () => {
    const r = await newRecovery();
    await stack.rt.services.recoveryProgress.enter(r.id, "PREPARING", "composing");
    await until(() => stack.app.wsFanout.size === 0 && stack.rt.services.recoveries.feeds.size === 0, "a clean start");
    const timersBefore = timers();
    for (let cycle = 0; cycle < 20; cycle++) {
      const subs = [watch(alice, r.id), watch(alice, r.id), watch(alice, r.id)];
      await Promise.all(subs.map((s) => s.waitFor(1)));
      // Close mid-stream: one while the others are still open, then the rest at once.
      await subs[0]!.dispose();
      await stack.rt.services.recoveryProgress.progress(r.id, "PREPARING", cycle + 1);
      await Promise.all(subs.slice(1).map((s) => s.dispose()));
    }
    await until(() => stack.app.wsFanout.size === 0 && stack.rt.services.recoveries.feeds.size === 0 && stack.app.sockets.size === 0, "every subscription to be released");
    // The worker probe's timer and the throttle's timer are gone too (give the throttle its 250 ms).
    await until(() => timers() <= timersBefore, `timers back to ${timersBefore} (now ${timers()})`);
  });
});

describe("recoveryProgress fan-out across two API processes sharing Redis", () => {
  let a: TestStack;
  let b: TestStack;
  beforeAll(async () => {
    [a, b] = await Promise.all([startStack({ REDIS_URL: "redis://127.0.0.1:6379" }), startStack({ REDIS_URL: "redis://127.0.0.1:6379" })]);
  });
  afterAll(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it("subscribers on both processes get every version written through either", async () => {
    const u = await signUp(a);
    const r = await a.rt.services.recoveries.create(u.id, { backupId: await completedBackup(a, u.id), target: "LOCAL" });
    const onA = openSubscription(a.client.withToken(u.token), RecoveryProgressDocument, { recoveryId: r.id });
    const onB = [0, 1].map(() => openSubscription(b.client.withToken(u.token), RecoveryProgressDocument, { recoveryId: r.id }));
    await Promise.all([onA, ...onB].map((s) => s.waitFor(1)));
    expect(b.app.wsFanout.subscribers).toBe(2);
    // One Redis subscription per process for the recovery (not one per subscriber), in place before the first write.
    const redis = new Redis("redis://127.0.0.1:6379");
    const channel = `RECOVERY_CHANGED:${r.id}`;
    await until(async () => ((await redis.pubsub("NUMSUB", channel)) as [string, number])[1] === 2, "both processes subscribed in Redis");
    redis.disconnect();
    await a.rt.services.recoveryProgress.enter(r.id, "PREPARING", "composing");
    await b.rt.services.recoveryProgress.enter(r.id, "IMPORTING", "importing");
    await a.rt.services.recoveryProgress.finish(r.id, "CANCELLED", { failureReason: "CANCELLED", message: "cancelled" });
    await Promise.all([onA, ...onB].map((s) => withTimeout(s.ended, 10_000, "completes on both processes")));
    for (const s of [onA, ...onB]) expect(states(s)).toEqual(["PENDING", "PREPARING", "IMPORTING", "CANCELLED"]);
    expect(versions(onB[0]!)).toEqual(versions(onA));
    expect(versions(onB[1]!)).toEqual(versions(onA));
    await Promise.all([onA, ...onB].map((s) => s.dispose()));
  });
});
