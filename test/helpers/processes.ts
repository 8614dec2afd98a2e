import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { inject } from "vitest";
import { PRODUCT_NODE_ARGS } from "../../bench/ipc";

export const root = path.resolve(__dirname, "..", "..");

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  /** Resolves when a line matching `re` has been printed (stdout or stderr). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * How node runs a TypeScript entry point of ours (`src/api.ts`): from the tree the global setup
 * compiled from the current sources (test/helpers/build.ts), else, in a project without that
 * setup, from the sources through @swc-node/register; with the node flags the product is deployed
 * with (scripts/lib.sh run_product). Their larger young generation also spares each process
 * ~0.6 s of garbage collection over its start and first seconds (API and worker, four pairs).
 */
export function nodeArgsFor(entry: string): string[] {
  const build = inject("productBuild");
  if (build) return [...PRODUCT_NODE_ARGS, "--enable-source-maps", path.join(build, entry.replace(/\.ts$/, ".js"))];
  return [...PRODUCT_NODE_ARGS, "-r", "@swc-node/register", path.join(root, entry)];
}

/**
 * Environment for `node bin/reclo.js …` in tests: the sources (never a stale dist/), from the
 * tree compiled from them for this run when there is one.
 */
export function cliSourceEnv(): NodeJS.ProcessEnv {
  const build = inject("productBuild");
  return { RECLO_CLI_FROM_SOURCE: "1", ...(build ? { RECLO_CLI_BUILD: build } : {}) };
}

/** Runs a TypeScript entry point of ours as a real child process. */
export function runTs(entry: string, env: NodeJS.ProcessEnv, args: string[] = []): Proc {
  const child = spawn(process.execPath, [...nodeArgsFor(entry), ...args], {
    cwd: root,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    output: () => out,
    waitFor(re, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            cleanup();
            resolve(m[0]);
          }
        };
        const onExit = () => {
          cleanup();
          reject(new Error(`${entry} exited before printing ${re}:\n${out.slice(-3000)}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${re} from ${entry}:\n${out.slice(-3000)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("exit", onExit);
        };
        listeners.add(check);
        child.once("exit", onExit);
        check();
      });
    },
    async kill(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
