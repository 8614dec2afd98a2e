import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq, sql } from "drizzle-orm";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { backups, recoveries } from "../../src/db/schema";
import { Topic, type RecoverySnapshot } from "../../src/events/topics";
import { RecoveryProgress, type StepState } from "../../src/recoveries/recovery-progress";
import { waitFor } from "../helpers/wait";

describe("recovery progress: persisted, monotonic, throttled without losing the terminal event", () => {
  let stack: TestStack;
  let user: TestUser;
  let backupId: string;
  beforeAll(async () => {
    stack = await startStack();
    user = await signUp(stack);
    const b = await stack.rt.services.backups.create(user.id, { sourceName: "p", imageSize: 1 << 20, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED" }).where(eq(backups.id, b.id));
    backupId = b.id;
  });
  afterAll(() => stack.stop());

  async function collect(recoveryId: string) {
    const got: RecoverySnapshot[] = [];
    const it = stack.rt.events.bus.subscribe(Topic.RECOVERY_CHANGED, recoveryId);
    void (async () => {
      for await (const e of it) got.push(e);
    })();
    await new Promise((r) => setTimeout(r, 20));
    return { got, stop: () => it.return?.() };
  }

  it("coalesces bursts within a step, never goes backwards, publishes state changes and the terminal state at once", async () => {
    const r = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    const progress = new RecoveryProgress(stack.rt.database.db, stack.rt.events.bus, { minIntervalMs: 200 });
    const { got, stop } = await collect(r.id);
    await progress.begin(r.id, new Date(Date.now() + 60_000));
    await progress.enter(r.id, "PREPARING", "composing");
    for (let p = 1; p <= 50; p++) await progress.progress(r.id, "PREPARING", p * 2);
    await progress.progress(r.id, "PREPARING", 30); // a late, lower report from a retried attempt
    await progress.enter(r.id, "IMPORTING", "importing");
    await progress.progress(r.id, "IMPORTING", 10);
    await progress.finish(r.id, "FAILED", { failureReason: "TIMED_OUT", message: "too slow" });
    await progress.progress(r.id, "IMPORTING", 90); // after the end: ignored
    await progress.enter(r.id, "LAUNCHING", "late"); // after the end: ignored
    await new Promise((res) => setTimeout(res, 300));
    await stop();

    expect(got.length).toBeLessThan(20); // 50 updates within a step were coalesced
    expect(got.at(-1)).toMatchObject({ state: "FAILED", failureReason: "TIMED_OUT" });
    const versions = got.map((g) => g.version);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    for (let i = 1; i < got.length; i++) {
      expect(got[i]!.totalProgress).toBeGreaterThanOrEqual(got[i - 1]!.totalProgress);
      if (got[i]!.state === got[i - 1]!.state) expect(got[i]!.stepProgress).toBeGreaterThanOrEqual(got[i - 1]!.stepProgress);
    }
    expect(got.map((g) => g.state).filter((s, i, a) => s !== a[i - 1])).toEqual(["PENDING", "PREPARING", "IMPORTING", "FAILED"].slice(got[0]!.state === "PENDING" ? 0 : 1));
    const row = await stack.rt.services.recoveries.get(user.id, r.id);
    expect(row).toMatchObject({ state: "FAILED", stepProgress: 10, totalProgress: 34 });
  });

  it("a progress report keeps the message unless it brings one, moves the clock the reconciler reads, and a message alone counts as a report", async () => {
    const r = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    const at = new Date("2026-01-02T03:04:05.000Z");
    const progress = new RecoveryProgress(stack.rt.database.db, stack.rt.events.bus, { minIntervalMs: 0, now: () => at });
    await progress.begin(r.id, new Date(Date.now() + 60_000));
    await progress.enter(r.id, "PREPARING", "composing");
    await progress.progress(r.id, "PREPARING", 40);
    expect(await stack.rt.services.recoveries.get(user.id, r.id)).toMatchObject({ stepProgress: 40, totalProgress: 12, message: "composing", updatedAt: at });
    const v = (await stack.rt.services.recoveries.get(user.id, r.id)).version;
    await progress.progress(r.id, "PREPARING", 20); // lower, no message: nothing changes
    expect(await stack.rt.services.recoveries.get(user.id, r.id)).toMatchObject({ stepProgress: 40, version: v });
    await progress.progress(r.id, "PREPARING", 20, "3/8 parts"); // lower with a message: the message, not the number
    expect(await stack.rt.services.recoveries.get(user.id, r.id)).toMatchObject({ stepProgress: 40, message: "3/8 parts", version: v + 1 });
    await progress.progress(r.id, "IMPORTING", 90, "wrong step"); // another step's report: ignored
    expect(await stack.rt.services.recoveries.get(user.id, r.id)).toMatchObject({ state: "PREPARING", stepProgress: 40, message: "3/8 parts", version: v + 1 });
    await progress.finish(r.id, "CANCELLED");
  });

  it("reports of several recoveries side by side each keep their own rules, and each change is published once (the reads that follow are gathered)", async () => {
    const at = new Date("2026-01-02T03:04:05.000Z");
    const progress = new RecoveryProgress(stack.rt.database.db, stack.rt.events.bus, { minIntervalMs: 0, now: () => at });
    const rs = await Promise.all([0, 1, 2, 3].map(() => stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" })));
    for (const r of rs) {
      await progress.begin(r.id, new Date(Date.now() + 60_000));
      await progress.enter(r.id, "PREPARING", "composing");
    }
    const before = await Promise.all(rs.map((r) => stack.rt.services.recoveries.get(user.id, r.id)));
    const [a, b, c, d] = rs.map((r) => r.id) as [string, string, string, string];
    const feeds = await Promise.all(rs.map((r) => collect(r.id)));
    const reports: [string, StepState, number, string?][] = [
      [a, "PREPARING", 40],
      [b, "PREPARING", 30, "1/8 parts"],
      [c, "IMPORTING", 90, "wrong step"], // another step's report: ignored
      [d, "PREPARING", 0], // not above the current value, no message: ignored
      [a, "PREPARING", 20], // lower, no message: ignored
      [b, "PREPARING", 10, "2/8 parts"], // lower with a message: the message, not the number
      [a, "PREPARING", 60, ""], // an empty message: the number, the message kept
      [b, "PREPARING", 50, "3/8 parts"],
    ];
    // Each recovery's reports one after the other (as its activity sends them), the recoveries side by side.
    await Promise.all(
      rs.map(async (r) => {
        for (const [id, state, p, m] of reports) if (id === r.id) await progress.progress(id, state, p, m);
      }),
    );
    await progress.flush();
    const after = await Promise.all(rs.map((r) => stack.rt.services.recoveries.get(user.id, r.id)));
    expect(after[0]).toMatchObject({ stepProgress: 60, totalProgress: 18, message: "composing", version: before[0]!.version + 2, updatedAt: at });
    expect(after[1]).toMatchObject({ stepProgress: 50, totalProgress: 15, message: "3/8 parts", version: before[1]!.version + 3 });
    expect(after[2]).toMatchObject({ state: "PREPARING", stepProgress: 0, message: "composing", version: before[2]!.version });
    expect(after[3]).toMatchObject({ stepProgress: 0, message: "composing", version: before[3]!.version });
    // Every subscriber ends on its recovery's row as written, never going back.
    await waitFor("the last versions published", () => feeds.every((f, i) => f.got.at(-1)?.version === after[i]!.version || (after[i]!.version === before[i]!.version && !f.got.some((e) => e.version > before[i]!.version))), 5000, 20);
    for (const [i, f] of feeds.entries()) {
      const versions = f.got.map((e) => e.version);
      expect([...versions].sort((x, y) => x - y)).toEqual(versions);
      expect(new Set(versions).size).toBe(versions.length);
      if (after[i]!.version > before[i]!.version) expect(f.got.at(-1)).toMatchObject({ stepProgress: after[i]!.stepProgress, message: after[i]!.message });
      await f.stop();
    }
    for (const r of rs) await progress.finish(r.id, "CANCELLED");
  });

  it("publishes a progress report from the row it wrote (the version from the UPDATE), and reads the row back when another writer came between", async () => {
    const r = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    const progress = new RecoveryProgress(stack.rt.database.db, stack.rt.events.bus, { minIntervalMs: 0 });
    const db = stack.rt.database.db;
    const { got, stop } = await collect(r.id);
    await progress.begin(r.id, new Date(Date.now() + 60_000));
    await progress.enter(r.id, "PREPARING", "composing");
    const row = () => stack.rt.services.recoveries.get(user.id, r.id);
    const last = async (version: number) => {
      await waitFor(`version ${version} published`, () => got.at(-1)?.version === version, 5000, 10);
      return got.at(-1)!;
    };

    await progress.progress(r.id, "PREPARING", 10, "1/8 parts");
    const first = await row();
    expect(await last(first.version)).toMatchObject({ state: "PREPARING", stepProgress: 10, totalProgress: 3, message: "1/8 parts", version: first.version });

    // A change behind the versions' back (nothing in the product writes without a new version): the
    // next report is published from what this process wrote, not read back, so it does not show it.
    await db.update(recoveries).set({ message: "not read" }).where(eq(recoveries.id, r.id));
    await progress.progress(r.id, "PREPARING", 20);
    expect(await last(first.version + 1)).toMatchObject({ stepProgress: 20, totalProgress: 6, message: "1/8 parts" });

    // Another writer's change (a new version): the report after it finds a version skipped and reads the row.
    await db.update(recoveries).set({ message: "from elsewhere", version: sql`${recoveries.version} + 1` }).where(eq(recoveries.id, r.id));
    await progress.progress(r.id, "PREPARING", 30);
    const third = await row();
    expect(third).toMatchObject({ stepProgress: 30, message: "from elsewhere", version: first.version + 3 });
    expect(await last(third.version)).toMatchObject({ stepProgress: 30, totalProgress: 9, message: "from elsewhere" });
    // And from there on, again from what it wrote.
    await progress.progress(r.id, "PREPARING", 40, "4/8 parts");
    expect(await last(third.version + 1)).toMatchObject({ stepProgress: 40, totalProgress: 12, message: "4/8 parts" });
    expect(await row()).toMatchObject({ stepProgress: 40, totalProgress: 12, message: "4/8 parts", version: third.version + 1 });

    await progress.finish(r.id, "CANCELLED");
    expect(await last(third.version + 2)).toMatchObject({ state: "CANCELLED" });
    await stop();
  });

  it("lists the user's recoveries filtered by active or finished and by backup", async () => {
    const progress = new RecoveryProgress(stack.rt.database.db, stack.rt.events.bus);
    const running = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    await progress.begin(running.id, new Date(Date.now() + 60_000));
    await progress.enter(running.id, "PREPARING", "composing");
    const ended = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    await progress.finish(ended.id, "CANCELLED");
    const ids = async (filter: { active?: boolean; backupId?: string }) => (await stack.rt.services.recoveries.list(user.id, { first: 100 }, filter)).edges.map((e) => e.node.id);
    const active = await ids({ active: true });
    expect(active).toContain(running.id);
    expect(active).not.toContain(ended.id);
    const finished = await ids({ active: false });
    expect(finished).toContain(ended.id);
    expect(finished).not.toContain(running.id);
    expect(await ids({ backupId })).toEqual(expect.arrayContaining([running.id, ended.id]));
    expect(await ids({ backupId: "01a00000-0000-7000-8000-000000000000" })).toEqual([]);
    await progress.finish(running.id, "CANCELLED");
    expect(await ids({ active: true })).not.toContain(running.id);
  });

  it("a subscriber sees a terminal event published right after it subscribed, and completes", async () => {
    const r = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    const iterator = await stack.rt.services.recoveries.progress(user.id, r.id);
    // Published before the subscriber pulls anything: it must not be lost.
    await stack.rt.services.recoveryProgress.finish(r.id, "FAILED", { failureReason: "TEST", message: "ended early" });
    const states: string[] = [];
    const t0 = Date.now();
    for await (const s of iterator) states.push(s.state);
    expect(states.at(-1)).toBe("FAILED");
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("a closed subscription is released at once, without waiting for another event", async () => {
    const r = await stack.rt.services.recoveries.create(user.id, { backupId, target: "LOCAL" });
    const iterator = await stack.rt.services.recoveries.progress(user.id, r.id);
    expect((await iterator.next()).value).toMatchObject({ id: r.id, state: "PENDING" });
    const pending = iterator.next(); // waits for an event that never comes
    const t0 = Date.now();
    await iterator.return!();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(Date.now() - t0).toBeLessThan(500);
  });
});
