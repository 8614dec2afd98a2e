import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { inject } from "vitest";
import { cliSourceEnv, root, runTs, type Proc } from "./processes";

const run = promisify(execFile);

/**
 * The product as it is deployed: API and worker as separate processes over Redis, on the test
 * database and the real services, each test file with its own task queue and data directory.
 * QEMU runs in TCG with little memory, polling is fast, and the boot marker is the one the test
 * image prints.
 */
export function productEnv(opts: { name: string; port: number; dataDir: string; marker?: string }, overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    PORT: String(opts.port),
    DATABASE_URL: inject("databaseUrl"),
    MIGRATE_ON_START: "false",
    REDIS_URL: "redis://127.0.0.1:6379",
    TEMPORAL_TASK_QUEUE: `${opts.name}-${process.pid}-${Date.now()}`,
    TEMPORAL_WORKFLOW_BUNDLE: inject("workflowBundlePath"),
    RUN_SCHEDULES: "false",
    // Shared Redis counters: every test file creates accounts from 127.0.0.1.
    SIGNUP_MAX_PER_ADDRESS: "100000",
    LOGIN_MAX_ATTEMPTS_PER_ADDRESS: "100000",
    // Every test user verifies its address (and some reset passwords) from 127.0.0.1 too.
    ACCOUNT_TOKEN_MAX_PER_ADDRESS: "100000",
    PASSWORD_RESET_MAX_PER_ADDRESS: "100000",
    // Test files share one database: the local host's machine limit would count every other file's
    // machines and active fixture rows, so a start could be refused by what another file runs at
    // that moment (seen: outages' Temporal case refused HOST_RUNNING_MACHINES). No limit here;
    // test/integration/quotas.test.ts sets its own to test it.
    HOST_MAX_RUNNING_MACHINES: "0",
    // Webhook receivers in tests listen on 127.0.0.1.
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES: "true",
    RECLO_DATA_DIR: opts.dataDir,
    // The one key file `npm test` makes (scripts/test.sh), also when a file is run on its own: a
    // product would otherwise create <data dir>/secrets.key, which the faults' leftover check sees.
    ...(process.env.SECRETS_KEY ? {} : { SECRETS_KEY_FILE: inject("secretsKeyFile") }),
    VPN_HELPER_BINARY: inject("vpnHelperBinary"),
    RECOVERY_POLL_INTERVAL: "200ms",
    RECOVERY_HEARTBEAT_TIMEOUT: "3s",
    RECOVERY_TIME_LIMIT: "10m",
    QEMU_ACCEL: "tcg",
    QEMU_MEMORY_MB: "64",
    QEMU_CPUS: "1",
    QEMU_STOP_TIMEOUT: "2s",
    // After the marker, the boot check keeps looking (the other ports, a settled screen) for the
    // grace: a boot sector's prompt-less screen and closed ports never end it sooner, so each of
    // their recoveries and verifications waited all of it. 1 s is still several polls (200 ms) with
    // a screenshot, which the CLI and the console show.
    ...(opts.marker ? { VERIFY_BOOT_MARKER: opts.marker, VERIFY_BOOT_TIMEOUT: "60s", VERIFY_EVIDENCE_GRACE: "1s" } : {}),
    ...overrides,
  };
}

export async function startApi(env: NodeJS.ProcessEnv): Promise<Proc> {
  const api = runTs("src/api.ts", env);
  try {
    await api.waitFor(/ReClo is running/, 90_000);
  } catch (err) {
    await api.kill("SIGKILL");
    throw err;
  }
  return api;
}

export async function startWorker(env: NodeJS.ProcessEnv): Promise<Proc> {
  const worker = runTs("src/worker.ts", env);
  try {
    await worker.waitFor(/ReClo worker is running/, 90_000);
  } catch (err) {
    await worker.kill("SIGKILL");
    throw err;
  }
  return worker;
}

/**
 * API and worker, started together; resolves when both are up. When one fails to start the other
 * is stopped too (it would otherwise outlive the test file, a process nobody holds).
 */
export async function startProduct(env: NodeJS.ProcessEnv): Promise<{ api: Proc; worker: Proc }> {
  const [api, worker] = await Promise.allSettled([startApi(env), startWorker(env)]);
  if (api.status === "fulfilled" && worker.status === "fulfilled") return { api: api.value, worker: worker.value };
  await Promise.all([api, worker].map((p) => (p.status === "fulfilled" ? p.value.kill("SIGKILL") : undefined)));
  throw [api, worker].find((p): p is PromiseRejectedResult => p.status === "rejected")!.reason;
}

/** Backs `image` up with the real `reclo backup --json`; returns the completed backup's id. */
export async function backupWithCli(opts: { graphqlUrl: string; token: string; configDir: string; image: string; source: string }): Promise<string> {
  const cli = await run(process.execPath, [path.join(root, "bin/reclo.js"), "backup", opts.image, "--json", "--source", opts.source], {
    cwd: root,
    env: { ...process.env, RECLO_URL: opts.graphqlUrl, RECLO_TOKEN: opts.token, RECLO_CONFIG_DIR: opts.configDir, ...cliSourceEnv() },
  });
  const done = cli.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { event: string; backupId?: string; status?: string })
    .find((e) => e.event === "done");
  if (done?.status !== "COMPLETED" || !done.backupId) throw new Error(`reclo backup did not complete:\n${cli.stdout}\n${cli.stderr}`);
  return done.backupId;
}
