import { describe, expect, it } from "vitest";
import { matchSignatures, SCREEN_FAILURES, withoutKernelTimestamp } from "../../src/evidence/signatures";

describe("screen signatures", () => {
  it.each([
    ["[    1.415565] Kernel panic - not syncing: VFS: Unable to mount root fs"],
    ["1.415565] Kernel panic - not syncing: VFS: Unable to mount root fs"],
    ["415565] Kernel panic - not syncing: VFS: Unable to mount root fs"],
    ["[ 1. 415565 ] Kernel panic - not syncing: VFS: Unable to mount root fs"],
    ["{ 1.415565] Kernel panic - not syncing: VFS: Unable to mount root fs"],
    ["| 1.415565| Kernel panic - not syncing: VFS: Unable to mount root fs"],
    ["Kernel panic - not syncing: VFS: Unable to mount root fs"],
  ])("quotes the kernel's line without its uptime stamp however OCR read it: %s", (line) => {
    const text = `Run /init as init process\n${line}\nCPU: 0 PID: 1 Comm: swapper`;
    expect(matchSignatures(text, SCREEN_FAILURES)).toEqual([
      { name: "Kernel panic", line: "Kernel panic - not syncing: VFS: Unable to mount root fs" },
    ]);
  });

  it("leaves lines that do not start with a stamp as they were", () => {
    expect(withoutKernelTimestamp("Boot failed: not a bootable disk")).toBe("Boot failed: not a bootable disk");
    expect(withoutKernelTimestamp("10.0.2.15 login:")).toBe("10.0.2.15 login:");
    expect(withoutKernelTimestamp("2 partitions found")).toBe("2 partitions found");
  });
});
