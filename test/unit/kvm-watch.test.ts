import { describe, expect, it } from "vitest";
import { kvmFailure } from "../../src/compute/local/qemu";

/** Run states as QMP query-status answers them, one per call (the last one repeats). */
function states(...seq: (string | Error)[]) {
  let i = 0;
  const asked: number[] = [];
  const statusOf = async () => {
    asked.push(Date.now());
    const s = seq[Math.min(i++, seq.length - 1)]!;
    if (s instanceof Error) throw s;
    return s;
  };
  return { statusOf, asked };
}

describe("the KVM watch of a machine started under QEMU_ACCEL=auto", () => {
  it("reports the machine KVM stopped with an internal error, as soon as it is seen", async () => {
    const { statusOf, asked } = states("running", "running", "internal-error", "running");
    const started = Date.now();
    expect(await kvmFailure(statusOf, 5000, 10)).toBe("internal-error");
    expect(asked).toHaveLength(3);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("asks again while QMP does not answer yet", async () => {
    const { statusOf } = states(new Error("ECONNREFUSED"), new Error("ENOENT"), "internal-error");
    expect(await kvmFailure(statusOf, 5000, 10)).toBe("internal-error");
  });

  it("lets a machine that keeps running (or that the guest paused or shut down) go at the end of the window", async () => {
    for (const seq of [["running"], ["running", "paused"], ["running", "shutdown"], [new Error("QMP timed out")]]) {
      const { statusOf, asked } = states(...seq);
      const started = Date.now();
      expect(await kvmFailure(statusOf, 150, 10)).toBeUndefined();
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      expect(asked.length).toBeGreaterThan(3);
    }
  });

});
