import { describe, expect, it, vi } from "vitest";
import { BoundedQueue } from "../../src/shared/bounded-queue";
import { AppError, busy, ErrorCode, isBusy } from "../../src/shared/errors";
import { PasswordHasher } from "../../src/auth/password";

/** A call that runs until the test ends it. */
function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

/** Lets every settled promise's continuations run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("BoundedQueue: K running, Q waiting, the next refused", () => {
  it("runs K at once, queues Q in order, refuses the next with the typed BUSY error, and a failure frees its slot", async () => {
    const queue = new BoundedQueue({ concurrency: 2, maxWaiting: 3, refuse: busy, initialEstimateMs: 1000 });
    const started: number[] = [];
    const gates = Array.from({ length: 5 }, gate);
    const results = gates.map((g, i) =>
      queue.run(async () => {
        started.push(i);
        await g.promise;
        return i;
      }),
    );
    await settle();
    expect(started).toEqual([0, 1]);
    expect(queue.stats()).toMatchObject({ concurrency: 2, maxWaiting: 3, running: 2, waiting: 3 });

    // K + Q admitted: the next is refused at once, without running, with RATE_LIMITED / BUSY.
    let ran = false;
    const refused = await queue
      .run(async () => {
        ran = true;
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(ran).toBe(false);
    expect(refused).toBeInstanceOf(AppError);
    expect(isBusy(refused)).toBe(true);
    const details = (refused as AppError).details;
    expect([(refused as AppError).code, details.reason]).toEqual([ErrorCode.RATE_LIMITED, "BUSY"]);
    // 5 admitted, 2 at a time, ~1 s each (the initial estimate): about 3 s.
    expect(details.retryAfterSeconds).toBe(3);
    expect(() => queue.reserve()).toThrow(/busy/);

    // A failing call frees its slot; the first waiter (2) gets it, not a later one.
    gates[1]!.fail(new Error("argon2 failed"));
    await expect(results[1]).rejects.toThrow("argon2 failed");
    await settle();
    expect(started).toEqual([0, 1, 2]);
    expect(queue.stats()).toMatchObject({ running: 2, waiting: 2 });

    // Room for one more waiter now; it queues behind 3 and 4.
    const late = gate();
    const lateResult = queue.run(async () => {
      started.push(5);
      await late.promise;
      return 5;
    });
    expect(queue.stats()).toMatchObject({ running: 2, waiting: 3 });

    for (const i of [0, 2, 3, 4]) {
      gates[i]!.open();
      await settle();
    }
    late.open();
    expect(await Promise.all([results[0], results[2], results[3], results[4], lateResult])).toEqual([0, 2, 3, 4, 5]);
    // Order kept: each waiter started in the order it arrived.
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    expect(queue.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it("a reserved place counts as waiting until it runs or is released; a place runs once", async () => {
    const queue = new BoundedQueue({ concurrency: 1, maxWaiting: 1, refuse: busy });
    const a = queue.reserve();
    const b = queue.reserve();
    expect(queue.stats()).toMatchObject({ running: 0, waiting: 2 });
    expect(() => queue.reserve()).toThrow(AppError);
    b.release();
    b.release();
    expect(queue.stats()).toMatchObject({ running: 0, waiting: 1 });
    await expect(a.run(async () => "first")).resolves.toBe("first");
    await expect(a.run(async () => "again")).rejects.toThrow(/already used/);
    a.release();
    expect(queue.stats()).toMatchObject({ running: 0, waiting: 0 });
    await expect(b.run(async () => "released")).rejects.toThrow(/already released/);
  });
});

describe("PasswordHasher goes through its queue", () => {
  // OWASP's m=19 MiB, t=2 (the configured default), one slot, no waiting room.
  const params = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };

  it("hashes and verifies; the dummy verify (unknown account) takes a slot like a real one and matches nothing", async () => {
    const hasher = new PasswordHasher(params, { concurrency: 1, maxWaiting: 0 });
    const hash = await hasher.hash("correct horse battery staple");
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    await expect(hasher.verify(hash, "correct horse battery staple")).resolves.toBe(true);
    await expect(hasher.verify(hash, "wrong horse battery staple")).resolves.toBe(false);

    const dummy = hasher.verify(undefined, "correct horse battery staple");
    expect(hasher.stats()).toMatchObject({ running: 1, waiting: 0 });
    // The slot is taken by the dummy verify: the next operation is refused BUSY.
    const refused = await hasher.verify(hash, "correct horse battery staple").catch((err: unknown) => err);
    expect(isBusy(refused)).toBe(true);
    await expect(dummy).resolves.toBe(false);
    expect(hasher.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it("the dummy verify does the same argon2 work as a real one: a hash string with the same parameters, salt and digest sizes", async () => {
    // argon2's cost is set by the parameters in the stored string (m, t, p) and the digest length,
    // so equal strings in shape mean equal work. Timed comparisons are bench work (bench/), not a
    // test's: on a loaded machine the medians of five verifies differed 2x either way.
    const hasher = new PasswordHasher(params, { concurrency: 1, maxWaiting: 8 });
    const hash = await hasher.hash("correct horse battery staple");
    const verified: string[] = [];
    const spy = vi.spyOn(PasswordHasher.prototype as unknown as { argon2Verify(h: string, p: string): Promise<boolean> }, "argon2Verify").mockImplementation(async function (this: unknown, h: string) {
      verified.push(h);
      return false;
    });
    try {
      await hasher.verify(hash, "not the password at all");
      await hasher.verify(undefined, "not the password at all");
      await hasher.verify(undefined, "another wrong password");
    } finally {
      spy.mockRestore();
    }
    const shape = (h: string) => {
      const [, alg, version, costs, salt, digest] = h.split("$");
      return { alg, version, costs, saltBytes: Buffer.from(salt!, "base64").length, digestBytes: Buffer.from(digest!, "base64").length };
    };
    expect(verified).toHaveLength(3);
    expect(verified[0]).toBe(hash);
    expect(shape(verified[1]!)).toEqual(shape(hash));
    expect(shape(hash)).toMatchObject({ alg: "argon2id", costs: "m=19456,t=2,p=1", saltBytes: 16, digestBytes: 32 });
    // One dummy per hasher (nothing hashed to make it), and no password matches it.
    expect(verified[2]).toBe(verified[1]);
    await expect(hasher.verify(undefined, "")).resolves.toBe(false);
  });
});
