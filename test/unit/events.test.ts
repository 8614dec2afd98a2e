import { describe, expect, it } from "vitest";
import { createEventBus, createMemoryEventBus } from "../../src/events/adapters";
import { eager, live, SharedFeeds } from "../../src/events/live";
import { Topic, type BackupChangedEvent, type RecoverySnapshot } from "../../src/events/topics";
import { graphqlPubSub } from "../../src/graphql/subscriptions";

const backup = (userId: string, backupId: string): BackupChangedEvent => ({ userId, backupId });

function snapshot(version: number, state: RecoverySnapshot["state"] = "IMPORTING", userId = "u1"): RecoverySnapshot {
  return {
    id: "r1",
    userId,
    backupId: "b1",
    target: "LOCAL",
    state,
    stepProgress: version,
    totalProgress: version,
    message: null,
    failureReason: null,
    startedAt: null,
    deadlineAt: null,
    completedAt: null,
    createdAt: "2026-01-01T00:00:00.000Z",
    version,
    bootCheck: null,
    rtoSeconds: null,
  };
}

describe("memory event bus", () => {
  it("without a Redis URL the bus is in-process and closes without error", async () => {
    const handle = createEventBus(undefined);
    expect(handle.transport).toBe("memory");
    await expect(handle.close()).resolves.toBeUndefined();
  });

  it("a routed topic reaches only the subscribers of that id, in publish order", async () => {
    const bus = createMemoryEventBus();
    const mine = eager(bus.subscribe(Topic.BACKUP_CHANGED, "u1"));
    const theirs = eager(bus.subscribe(Topic.BACKUP_CHANGED, "u2"));
    bus.publish(Topic.BACKUP_CHANGED, "u2", backup("u2", "b9"));
    bus.publish(Topic.BACKUP_CHANGED, "u1", backup("u1", "b1"));
    bus.publish(Topic.BACKUP_CHANGED, "u1", backup("u1", "b2"));
    expect((await mine.next()).value).toEqual(backup("u1", "b1"));
    expect((await mine.next()).value).toEqual(backup("u1", "b2"));
    expect((await theirs.next()).value).toEqual(backup("u2", "b9"));
    await mine.return!();
    await theirs.return!();
  });

  it("a topic without routing reaches every subscriber", async () => {
    const bus = createMemoryEventBus();
    const subscribers = Array.from({ length: 12 }, () => eager(bus.subscribe(Topic.SESSIONS_REVOKED)));
    bus.publish(Topic.SESSIONS_REVOKED, { userId: "u1", sessionIds: ["s1"] });
    for (const s of subscribers) expect((await s.next()).value).toEqual({ userId: "u1", sessionIds: ["s1"] });
    await Promise.all(subscribers.map((s) => s.return!()));
  });

  it("a bare subscription listens from its first next(); eager() listens at once", async () => {
    const bus = createMemoryEventBus();
    const lazy = bus.subscribe(Topic.RECOVERY_CHANGED, "r1");
    const early = eager(bus.subscribe(Topic.RECOVERY_CHANGED, "r1"));
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(1));
    const pending = lazy.next();
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(2));
    expect((await pending).value).toEqual(snapshot(2));
    expect((await early.next()).value).toEqual(snapshot(1));
    expect((await early.next()).value).toEqual(snapshot(2));
    await lazy.return!();
    await early.return!();
  });

  it("the port is typed by topic: routed topics need their id, payloads their shape", () => {
    const bus = createMemoryEventBus();
    const checks = () => {
      // @ts-expect-error a routed topic without its id
      bus.subscribe(Topic.RECOVERY_CHANGED);
      // @ts-expect-error an unrouted topic takes no id
      bus.subscribe(Topic.SESSIONS_REVOKED, "u1");
      // @ts-expect-error the payload of another topic
      bus.publish(Topic.BACKUP_CHANGED, "u1", { instanceId: "i1", userId: "u1" });
    };
    expect(typeof checks).toBe("function");
  });
});

describe("eager", () => {
  it("return() ends a pending next() at once and drops what was buffered", async () => {
    const bus = createMemoryEventBus();
    const events = eager(bus.subscribe(Topic.RECOVERY_CHANGED, "r1"));
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(1));
    expect((await events.next()).value).toEqual(snapshot(1));
    const waiting = events.next();
    await expect(events.return!()).resolves.toEqual({ done: true, value: undefined });
    await expect(waiting).resolves.toEqual({ done: true, value: undefined });
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(2));
    await expect(events.next()).resolves.toEqual({ done: true, value: undefined });
  });

  it("a failing source fails the next read after what it had already delivered", async () => {
    const boom = new Error("source failed");
    let calls = 0;
    const source: AsyncIterator<number> = {
      next: async () => {
        calls++;
        if (calls === 1) return { done: false, value: 1 };
        throw boom;
      },
    };
    const events = eager(source);
    expect(await events.next()).toEqual({ done: false, value: 1 });
    expect(await events.next()).toEqual({ done: true, value: undefined });
    await expect(events.next()).rejects.toBe(boom);
  });
});

describe("live", () => {
  const recoveryLive = (bus: ReturnType<typeof createMemoryEventBus>, initial: RecoverySnapshot | null) =>
    live(eager(bus.subscribe(Topic.RECOVERY_CHANGED, "r1")), {
      initial,
      accept: (ev, last) => ev.userId === "u1" && ev.version > (last?.version ?? -1),
      isFinal: (ev) => ev.state === "COMPLETED" || ev.state === "FAILED",
    });

  it("sends the current state first, then accepted events, and completes after a final one", async () => {
    const bus = createMemoryEventBus();
    const it = recoveryLive(bus, snapshot(2));
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(1)); // older than the current state: dropped
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(5, "IMPORTING", "u2")); // another user's: dropped
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(3));
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(4, "COMPLETED"));
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(6));
    const seen: RecoverySnapshot[] = [];
    for await (const ev of it) seen.push(ev);
    expect(seen.map((s) => [s.version, s.state])).toEqual([
      [2, "IMPORTING"],
      [3, "IMPORTING"],
      [4, "COMPLETED"],
    ]);
  });

  it("with no current state it waits for the first event; a final current state completes at once", async () => {
    const bus = createMemoryEventBus();
    const waiting = recoveryLive(bus, null);
    const first = waiting.next();
    bus.publish(Topic.RECOVERY_CHANGED, "r1", snapshot(1));
    expect((await first).value).toEqual(snapshot(1));
    await waiting.return!();

    const finished = recoveryLive(bus, snapshot(7, "FAILED"));
    expect((await finished.next()).value).toEqual(snapshot(7, "FAILED"));
    expect(await finished.next()).toEqual({ done: true, value: undefined });
  });

  it("return() ends a subscription waiting for its next event at once", async () => {
    const bus = createMemoryEventBus();
    const it = recoveryLive(bus, snapshot(1));
    await it.next();
    const waiting = it.next();
    await expect(it.return!()).resolves.toEqual({ done: true, value: undefined });
    await expect(waiting).resolves.toEqual({ done: true, value: undefined });
  });
});

describe("type-graphql PubSub over the bus", () => {
  it("subscribes to the bus by topic and routing id, and refuses a topic the bus does not have", async () => {
    const bus = createMemoryEventBus();
    const pubSub = graphqlPubSub(bus);
    const routed = eager(pubSub.subscribe(Topic.BACKUP_CHANGED, "u1")[Symbol.asyncIterator]());
    const unrouted = eager(pubSub.subscribe(Topic.SESSIONS_REVOKED)[Symbol.asyncIterator]());
    bus.publish(Topic.BACKUP_CHANGED, "u2", backup("u2", "b2"));
    pubSub.publish(Topic.BACKUP_CHANGED, "u1", backup("u1", "b1"));
    bus.publish(Topic.SESSIONS_REVOKED, { userId: "u1", sessionIds: "ALL" });
    expect((await routed.next()).value).toEqual(backup("u1", "b1"));
    expect((await unrouted.next()).value).toEqual({ userId: "u1", sessionIds: "ALL" });
    await routed.return!();
    await unrouted.return!();
    expect(() => pubSub.subscribe("NO_SUCH_TOPIC")).toThrow(/Unknown event topic "NO_SUCH_TOPIC"/);
  });
});

describe("SharedFeeds", () => {
  /** A source that yields what the test pushes, and says whether it was returned. */
  function pushable<T>() {
    const queue: T[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const it: AsyncIterator<T> = {
      async next() {
        while (!queue.length && !ended) await new Promise<void>((r) => (wake = r));
        return queue.length ? { done: false, value: queue.shift()! } : { done: true, value: undefined };
      },
      async return() {
        ended = true;
        wake?.();
        return { done: true, value: undefined };
      },
    };
    return { it, push: (v: T) => (queue.push(v), wake?.()), returned: () => ended };
  }
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
    expect(cond()).toBe(true);
  };

  it("one source and one probe per key however many listen; the probe speaks only while the source is silent; the last to leave returns the source", async () => {
    const sources = new Map<string, ReturnType<typeof pushable<string>>>();
    let looks = 0;
    const feeds = new SharedFeeds<string>({
      source: (key) => {
        const s = pushable<string>();
        sources.set(key, s);
        return s.it;
      },
      probe: { everyMs: 30, look: async (key) => (++looks === 1 ? null : `${key} probed`) },
    });
    const a: string[] = [];
    const b: string[] = [];
    const leaveA = feeds.listen("r1", { event: (v) => a.push(v), end: () => a.push("end") });
    const leaveB = feeds.listen("r1", { event: (v) => b.push(v), end: () => b.push("end") });
    expect(sources.size).toBe(1);
    expect(feeds.size).toBe(1);
    sources.get("r1")!.push("e1");
    await until(() => a.length === 1 && b.length === 1);
    // Silent: the first look finds nothing to say, the second does, once for both listeners.
    await until(() => a.includes("r1 probed"));
    expect(b).toEqual(a);
    expect(a).toEqual(["e1", "r1 probed"]);
    leaveA();
    leaveA(); // idempotent
    expect(sources.get("r1")!.returned()).toBe(false);
    sources.get("r1")!.push("e2");
    await until(() => b.at(-1) === "e2");
    expect(a).toEqual(["e1", "r1 probed"]);
    leaveB();
    expect(sources.get("r1")!.returned()).toBe(true);
    expect(feeds.size).toBe(0);
    const looked = looks;
    await new Promise((r) => setTimeout(r, 80));
    expect(looks).toBe(looked); // no timer left behind
  });

  it("after an event from the source the first look waits afterEventMs, then everyMs", async () => {
    const src = pushable<string>();
    const lookedAt: number[] = [];
    const feeds = new SharedFeeds<string>({ source: () => src.it, probe: { everyMs: 20, afterEventMs: 150, look: async () => (lookedAt.push(Date.now()), null) } });
    const leave = feeds.listen("k", { event: () => {}, end: () => {} });
    await until(() => lookedAt.length >= 1); // no event yet: everyMs
    const eventAt = Date.now();
    src.push("e");
    const before = lookedAt.length;
    await until(() => lookedAt.length >= before + 2);
    const after = lookedAt.slice(before);
    // A look already running when the event came may land just after it; the next waits afterEventMs.
    expect(after.filter((t) => t - eventAt >= 140).length).toBeGreaterThanOrEqual(1);
    expect(after.filter((t) => t - eventAt > 5 && t - eventAt < 140)).toEqual([]);
    leave();
  });

  it("looks over all keys start at most maxPerSecond, at most `concurrency` at once, first come first served: every silent key gets its turn", async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const starts: { key: string; at: number }[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const feeds = new SharedFeeds<string>({
      source: () => pushable<string>().it,
      probe: {
        everyMs: 5,
        maxPerSecond: 50,
        concurrency: 2,
        look: async (key) => {
          starts.push({ key, at: performance.now() });
          maxInFlight = Math.max(maxInFlight, ++inFlight);
          await new Promise((r) => setTimeout(r, 30));
          inFlight--;
          return null;
        },
      },
    });
    const leaves = keys.map((k) => feeds.listen(k, { event: () => {}, end: () => {} }));
    await until(() => starts.length >= keys.length + 1);
    // Unlimited, twelve keys due every 5 ms would have been looked at many times each by now.
    expect(starts.slice(0, keys.length).map((s) => s.key)).toEqual(keys);
    expect(maxInFlight).toBe(2);
    // 50 a second: starts 20 ms apart (timers may fire up to a millisecond early by the clock).
    const gaps = starts.slice(1).map((s, i) => s.at - starts[i]!.at);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(19);
    for (const leave of leaves) leave();
    expect(feeds.size).toBe(0);
  });

  it("a queued look is given up when its source speaks or its last listener leaves before its turn", async () => {
    const sources = new Map<string, ReturnType<typeof pushable<string>>>();
    const looked: string[] = [];
    const lookedAt: number[] = [];
    const feeds = new SharedFeeds<string>({
      source: (key) => {
        const s = pushable<string>();
        sources.set(key, s);
        return s.it;
      },
      probe: { everyMs: 5, afterEventMs: 60_000, maxPerSecond: 10, concurrency: 1, look: async (key) => (looked.push(key), lookedAt.push(performance.now()), null) },
    });
    const leaveA = feeds.listen("a", { event: () => {}, end: () => {} });
    const leaveB = feeds.listen("b", { event: () => {}, end: () => {} });
    const leaveC = feeds.listen("c", { event: () => {}, end: () => {} });
    // a looks at once; b and c wait for their turn, 100 ms apart.
    await until(() => looked.length === 1);
    const heardB: string[] = [];
    const leaveB2 = feeds.listen("b", { event: (v) => heardB.push(v), end: () => {} });
    sources.get("b")!.push("progress");
    await until(() => heardB.length === 1);
    leaveC();
    await until(() => looked.length === 2);
    // b heard from its worker and c has no listener: the next look is a's own next one.
    expect(looked).toEqual(["a", "a"]);
    // 10 a second: the next start waits 100 ms after the previous one by the queue's clock, read
    // just before it calls a look. This test's clock is read inside the look, later by a fraction
    // of a millisecond, more on a loaded machine (a fresh-clone run measured 99.85 ms). Unpaced,
    // the next look would have come 5 ms later.
    expect(lookedAt[1]! - lookedAt[0]!).toBeGreaterThanOrEqual(95);
    leaveA();
    leaveB();
    leaveB2();
    expect(feeds.size).toBe(0);
  });

  it("a source that ends or fails ends every listener, and the next listener gets a fresh source", async () => {
    let opened = 0;
    let fail: ((err: Error) => void) | undefined;
    const feeds = new SharedFeeds<string>({
      source: () => {
        opened++;
        return { next: () => new Promise<IteratorResult<string>>((_, reject) => (fail = reject)) };
      },
    });
    const ends: unknown[] = [];
    feeds.listen("k", { event: () => {}, end: (err) => ends.push(err) });
    feeds.listen("k", { event: () => {}, end: (err) => ends.push(err) });
    fail!(new Error("bus down"));
    await until(() => ends.length === 2);
    expect(ends.map((e) => (e as Error).message)).toEqual(["bus down", "bus down"]);
    expect(feeds.size).toBe(0);
    feeds.listen("k", { event: () => {}, end: () => {} });
    expect(opened).toBe(2);
  });
});
