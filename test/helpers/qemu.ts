import fs from "node:fs";

/** Live (non-zombie) QEMU processes whose command line mentions `dir`. */
export function qemuProcesses(dir: string): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      if (cmd.includes("qemu-system") && cmd.includes(dir) && !/\) Z /.test(stat)) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

/** SIGKILLs what qemuProcesses finds (test cleanup). */
export function killQemu(dir: string): void {
  for (const pid of qemuProcesses(dir)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
}
