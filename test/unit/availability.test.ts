import { describe, expect, it } from "vitest";
import { Availability, SLOW_CHECKS_TO_OPEN } from "../../src/shared/availability";
import { AppError } from "../../src/shared/errors";

/** A check whose next answers the test decides: "ok", "refused" or "slow" (never answers in time). */
function scripted() {
  let next: "ok" | "refused" | "slow" = "ok";
  return {
    set: (a: typeof next) => (next = a),
    check: {
      dependency: "OBJECT_STORE" as const,
      run: () =>
        next === "ok"
          ? Promise.resolve()
          : next === "refused"
            ? Promise.reject(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:7070"), { code: "ECONNREFUSED" }))
            : new Promise<void>(() => {}),
    },
  };
}

describe("Availability (the circuit breaker of each dependency)", () => {
  it("a refused check opens the breaker at once; the first passing check closes it", async () => {
    const a = new Availability({ timeoutMs: 20 });
    const s = scripted();
    await a.add("s3", s.check);
    expect(a.isUp("OBJECT_STORE")).toBe(true);
    s.set("refused");
    await a.checkAll();
    expect(a.isUp("OBJECT_STORE")).toBe(false);
    expect(() => a.assertUp("OBJECT_STORE")).toThrow(AppError);
    s.set("ok");
    await a.checkAll();
    expect(a.isUp("OBJECT_STORE")).toBe(true);
  });

  it(`a check that only answers slowly opens the breaker after ${SLOW_CHECKS_TO_OPEN} slow answers in a row, not before`, async () => {
    const a = new Availability({ timeoutMs: 20 });
    const s = scripted();
    await a.add("s3", s.check);
    s.set("slow");
    for (let i = 1; i < SLOW_CHECKS_TO_OPEN; i++) {
      await a.checkAll();
      expect(a.isUp("OBJECT_STORE"), `after ${i} slow answers`).toBe(true);
    }
    // An answer in time in between starts the count again.
    s.set("ok");
    await a.checkAll();
    s.set("slow");
    for (let i = 1; i < SLOW_CHECKS_TO_OPEN; i++) await a.checkAll();
    expect(a.isUp("OBJECT_STORE")).toBe(true);
    await a.checkAll();
    expect(a.isUp("OBJECT_STORE")).toBe(false);
    expect(a.snapshot().s3).toMatchObject({ ok: false, error: expect.stringContaining("did not answer within 20 ms") });
  });

  it("a real call refused marks the dependency down; a real call that timed out is UNAVAILABLE but leaves the decision to the check", async () => {
    const a = new Availability({ timeoutMs: 20 });
    const s = scripted();
    await a.add("s3", s.check);

    const timedOut = Object.assign(new Error("socket hang up"), { code: "ETIMEDOUT" });
    await expect(a.guard("OBJECT_STORE", () => Promise.reject(timedOut))).rejects.toMatchObject({ code: "UNAVAILABLE", details: { dependency: "OBJECT_STORE" } });
    expect(a.isUp("OBJECT_STORE")).toBe(true);

    s.set("refused");
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:7070"), { code: "ECONNREFUSED" });
    await expect(a.guard("OBJECT_STORE", () => Promise.reject(refused))).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(a.isUp("OBJECT_STORE")).toBe(false);
    await expect(a.guard("OBJECT_STORE", () => Promise.resolve("never called"))).rejects.toMatchObject({ code: "UNAVAILABLE" });

    // Any other error is the call's own, not the dependency's.
    s.set("ok");
    await a.checkAll();
    const denied = Object.assign(new Error("Access Denied"), { name: "AccessDenied" });
    await expect(a.guard("OBJECT_STORE", () => Promise.reject(denied))).rejects.toBe(denied);
    expect(a.isUp("OBJECT_STORE")).toBe(true);
  });
});
