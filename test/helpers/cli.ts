import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { root } from "./processes";

/** The `reclo` launcher the tests run (with RECLO_CLI_FROM_SOURCE=1: the sources, never a stale dist/). */
export const RECLO_BIN = path.join(root, "bin", "reclo.js");

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `reclo …` as a child process. `onLine` sees stdout lines as they come (and may kill the
 * child). Every child goes into `children`, so a test file's afterEach can kill what is left.
 */
export function spawnCli(
  children: Set<ChildProcess>,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; input?: string; onLine?: (line: string, child: ChildProcess) => void },
): Promise<CliRun> {
  const child = spawn(process.execPath, [RECLO_BIN, ...args], { cwd: root, env: opts.env, stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  let stdout = "";
  let stderr = "";
  let partial = "";
  child.stdout!.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
    partial += s;
    let nl: number;
    while ((nl = partial.indexOf("\n")) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      opts.onLine?.(line, child);
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  child.stdin!.end(opts.input ?? "");
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Kills every child still running (SIGKILL) and forgets them. */
export function killChildren(children: Set<ChildProcess>): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
}
