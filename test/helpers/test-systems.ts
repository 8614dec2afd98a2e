import { execFile } from "node:child_process";
import fsp from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = path.resolve(__dirname, "../..");

/** The real test systems scripts/test-systems.sh builds from Debian packages (see its header). */
export type TestSystemName = "linux-ok" | "no-service" | "kernel-panic" | "hang" | "no-boot" | "probe";

/** What the serial console of linux-ok prints once its services listen. */
export const LINUX_OK_READY = "RECLO-TEST-READY";

/**
 * The path of a test system's raw disk, building it (and every other one asked for) when it is
 * missing or older than the script. Builds are cached under .data/test-systems and serialised
 * with a lock, so parallel test files may call this at once.
 */
export async function testSystem(name: TestSystemName): Promise<string> {
  const { stdout } = await run("bash", [path.join(root, "scripts/test-systems.sh"), name], { cwd: root, maxBuffer: 1 << 20, timeout: 900_000 });
  const line = stdout
    .trim()
    .split("\n")
    .find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`scripts/test-systems.sh printed no path for ${name}: ${stdout}`);
  return line.slice(name.length + 1);
}

/**
 * Copies a test system's disk to `dest` and appends `extra` to its kernel command line (the
 * APPEND line of syslinux.cfg on the FAT partition, rewritten with mtools: no loop mount).
 * The probe system reads `reclo.probe=h:p,…` from there.
 */
export async function withBootArgs(src: string, dest: string, extra: string): Promise<string> {
  if (/[\r\n]/.test(extra)) throw new Error("kernel arguments must be one line");
  await fsp.copyFile(src, dest);
  const img = `${dest}@@1M`;
  const env = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
  const { stdout: cfg } = await run("mtype", ["-i", img, "::syslinux.cfg"], { env });
  if (!/^\s*APPEND /m.test(cfg)) throw new Error(`no APPEND line in syslinux.cfg of ${src}`);
  const next = cfg.replace(/^(\s*APPEND .*?)\s*$/m, `$1 ${extra}`);
  const tmp = `${dest}.cfg`;
  await fsp.writeFile(tmp, next);
  try {
    await run("mcopy", ["-o", "-i", img, tmp, "::syslinux.cfg"], { env });
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  return dest;
}
