import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";
import { createDatabase } from "../../../src/db/client";
import { runMigrations } from "../../../src/db/migrate";
import { freePort, root } from "../../helpers/processes";
import { cuttableProxy, type CuttableProxy } from "../../helpers/proxy";

const run = promisify(execFile);

/**
 * The fault suite's own services, so it can stop them without touching the shared ones:
 *
 *   mariadb    `mariadbd` on a --datadir made by `mariadb-install-db`, own port and socket, as `mysql`
 *   s3         versitygw (the binary scripts/services.sh installs), own root dir and port, buckets
 *              created with scripts/ensure-buckets.mjs as services.sh does
 *   temporal   `temporal server start-dev` (same binary), own port, own db file, headless (no UI)
 *   redis      a private `redis-server --port X` when the binary exists; otherwise a cuttable TCP
 *              proxy in front of the shared 6379 (stop() cuts it, start() listens again): the
 *              product sees the same outage, the shared Redis is never touched
 *
 * Every process is started by this module and stopped by its pid (SIGKILL: an outage, not a
 * shutdown), never by pattern; start() brings it back on the same port and the same data.
 */
export type DependencyName = "database" | "s3" | "temporal" | "redis";

export interface Service {
  name: DependencyName;
  port: number;
  /** The pid of the running process (undefined while stopped, or for the proxy). */
  pid(): number | undefined;
  running(): boolean;
  start(): Promise<void>;
  /** Kills the process by pid (SIGKILL) and waits for it to exit and its port to close. */
  stop(): Promise<void>;
  /** A short description for the report ("private redis-server", "proxy in front of 6379"). */
  kind: string;
}

export interface PrivateStack {
  dir: string;
  services: Record<DependencyName, Service>;
  /** Environment pointing the product at this stack. */
  env: NodeJS.ProcessEnv;
  databaseUrl: string;
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string; buckets: string[] };
  stop(): Promise<void>;
}

const S3_KEY = "reclo-faults";
const S3_SECRET = "reclo-faults-secret-key-0123456789";
const BUCKETS = { S3_BACKUPS_BUCKET: "reclo-backups", S3_IMPORTS_BUCKET: "reclo-imports", S3_ARTIFACTS_BUCKET: "reclo-artifacts" };

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs: number, child?: ChildProcess, log?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${what} exited (${child.exitCode ?? child.signalCode})${log ? `:\n${tail(log)}` : ""}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms${log ? `:\n${tail(log)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").slice(-2000);
  } catch {
    return "(no log)";
  }
}

/** One daemon we start: spawned detached-free with its output in a log file, killed by pid. */
function daemon(opts: { name: DependencyName; kind: string; port: number; log: string; cmd: string; args: string[]; env?: NodeJS.ProcessEnv; ready: () => Promise<boolean>; readyTimeoutMs?: number; beforeStart?: () => Promise<void> }): Service {
  let child: ChildProcess | undefined;
  return {
    name: opts.name,
    kind: opts.kind,
    port: opts.port,
    pid: () => child?.pid,
    running: () => child !== undefined,
    async start() {
      if (child) throw new Error(`${opts.name} already running (pid ${child.pid})`);
      await opts.beforeStart?.();
      const out = fs.openSync(opts.log, "a");
      const c = spawn(opts.cmd, opts.args, { env: { ...process.env, ...opts.env }, stdio: ["ignore", out, out] });
      fs.closeSync(out);
      child = c;
      c.once("exit", () => {
        if (child === c) child = undefined;
      });
      await waitUntil(opts.name, opts.ready, opts.readyTimeoutMs ?? 60_000, c, opts.log);
    },
    async stop() {
      const c = child;
      if (!c) return;
      const exited = new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r())));
      process.kill(c.pid!, "SIGKILL");
      await exited;
      child = undefined;
      await waitUntil(`${opts.name} port ${opts.port} to close`, async () => !(await portOpen(opts.port)), 10_000);
    },
  };
}

function which(bin: string, extra: string[] = []): string | undefined {
  for (const dir of [...extra, ...(process.env.PATH ?? "").split(":")]) {
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Starts the whole private stack under a fresh temp dir (os.tmpdir(): QEMU's -runas user reaches it). */
export async function startPrivateStack(): Promise<PrivateStack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-faults-"));
  fs.chmodSync(dir, 0o755);
  const logs = path.join(dir, "logs");
  fs.mkdirSync(logs);
  const tools = [process.env.RECLO_TOOLS_BIN ?? path.join(os.homedir(), "go", "bin")];
  const [dbPort, s3Port, tPort, tHttpPort, tMetricsPort, tUiPort, redisPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);

  // ---------------------------------------------------------------- MariaDB
  const mariadbd = which("mariadbd", ["/usr/sbin"]);
  const installDb = which("mariadb-install-db", ["/usr/bin"]);
  if (!mariadbd || !installDb) throw new Error("the fault suite needs mariadbd and mariadb-install-db (Debian mariadb-server)");
  const dbDir = path.join(dir, "mariadb");
  const dbData = path.join(dbDir, "data");
  fs.mkdirSync(dbData, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  const dbUser = asRoot ? ["--user=mysql"] : [];
  // The data dir is made while the other services start (it takes seconds); mariadbd waits for it.
  const installed = (async () => {
    if (asRoot) await run("chown", ["-R", "mysql:mysql", dbDir]);
    await run(installDb, ["--no-defaults", ...dbUser, `--datadir=${dbData}`, "--auth-root-authentication-method=normal", "--skip-test-db"], { maxBuffer: 1 << 22 });
  })();
  installed.catch(() => {}); // observed by the database's start below
  const database = daemon({
    name: "database",
    kind: "private mariadbd",
    port: dbPort,
    log: path.join(logs, "mariadb.log"),
    cmd: mariadbd,
    beforeStart: () => installed,
    args: ["--no-defaults", ...dbUser, `--datadir=${dbData}`, `--port=${dbPort}`, `--socket=${path.join(dbDir, "mysqld.sock")}`, "--bind-address=127.0.0.1", `--pid-file=${path.join(dbDir, "mysqld.pid")}`, "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--max-connections=500", "--skip-name-resolve"],
    ready: async () => {
      try {
        const c = await mysql.createConnection({ host: "127.0.0.1", port: dbPort, user: "root", connectTimeout: 1000 });
        await c.end();
        return true;
      } catch {
        return false;
      }
    },
  });

  // ---------------------------------------------------------------- versitygw
  const vgw = which("versitygw", tools);
  if (!vgw) throw new Error("versitygw is not installed (bash scripts/services.sh up installs it)");
  const s3Root = path.join(dir, "s3");
  const s3Versions = path.join(dir, "s3-versions");
  const s3Meta = path.join(dir, "meta-s3");
  fs.mkdirSync(s3Root);
  fs.mkdirSync(s3Versions);
  const s3Endpoint = `http://127.0.0.1:${s3Port}`;
  const s3Env = { S3_ENDPOINT: s3Endpoint, S3_ACCESS_KEY_ID: S3_KEY, S3_SECRET_ACCESS_KEY: S3_SECRET, S3_REGION: "us-east-1", ...BUCKETS };
  // As services.sh: user xattrs for object metadata, a sidecar dir where the file system has none.
  let sidecar = false;
  try {
    await run("setfattr", ["-n", "user.reclo", "-v", "1", s3Root]);
  } catch {
    sidecar = true;
  }
  if (sidecar) fs.mkdirSync(s3Meta);
  const s3 = daemon({
    name: "s3",
    kind: "private versitygw",
    port: s3Port,
    log: path.join(logs, "versitygw.log"),
    cmd: vgw,
    args: ["--port", `127.0.0.1:${s3Port}`, "--region", "us-east-1", "--quiet", "posix", "--versioning-dir", s3Versions, ...(sidecar ? ["--sidecar", s3Meta] : []), s3Root],
    env: { ROOT_ACCESS_KEY_ID: S3_KEY, ROOT_SECRET_ACCESS_KEY: S3_SECRET },
    ready: () => portOpen(s3Port),
  });

  // ---------------------------------------------------------------- Temporal
  const temporalBin = which("temporal", tools);
  if (!temporalBin) throw new Error("the temporal CLI is not installed (bash scripts/services.sh up installs it)");
  const tDir = path.join(dir, "temporal");
  fs.mkdirSync(tDir);
  const temporal = daemon({
    name: "temporal",
    kind: "private temporal start-dev",
    port: tPort,
    log: path.join(logs, "temporal.log"),
    cmd: temporalBin,
    // The shared dev server's flags (scripts/services.sh up_temporal, SQLite in WAL mode included).
    args: ["server", "start-dev", "--ip", "127.0.0.1", "--port", String(tPort), "--http-port", String(tHttpPort), "--metrics-port", String(tMetricsPort), "--ui-port", String(tUiPort), "--headless", "--db-filename", path.join(tDir, "temporal.db"), "--log-level", "warn", "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"],
    ready: async () => {
      if (!(await portOpen(tPort))) return false;
      try {
        await run(temporalBin, ["operator", "cluster", "health", "--address", `127.0.0.1:${tPort}`], { timeout: 5000 });
        return true;
      } catch {
        return false;
      }
    },
    readyTimeoutMs: 90_000,
  });

  // ---------------------------------------------------------------- Redis
  const redisServer = which("redis-server", ["/usr/bin", "/usr/sbin"]);
  let redis: Service;
  let proxy: CuttableProxy | undefined;
  if (redisServer) {
    const rDir = path.join(dir, "redis");
    fs.mkdirSync(rDir);
    redis = daemon({
      name: "redis",
      kind: "private redis-server",
      port: redisPort,
      log: path.join(logs, "redis.log"),
      cmd: redisServer,
      args: ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", rDir, "--daemonize", "no"],
      ready: () => portOpen(redisPort),
    });
  } else {
    // No redis-server binary: a proxy in front of the shared Redis that the suite cuts.
    proxy = await cuttableProxy(6379);
    await proxy.cut();
    let up = false;
    redis = {
      name: "redis",
      kind: "cuttable proxy in front of the shared Redis (no redis-server binary)",
      port: proxy.port,
      pid: () => undefined,
      running: () => up,
      async start() {
        if (!up) await proxy!.restore();
        up = true;
      },
      async stop() {
        if (up) await proxy!.cut();
        up = false;
      },
    };
  }

  const services = { database, s3, temporal, redis };
  // Should the test process die without its afterAll, its daemons die with it.
  const killOnExit = () => {
    for (const s of Object.values(services)) {
      const pid = s.pid();
      if (pid) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
  };
  process.once("exit", killOnExit);
  const stopAll = async () => {
    process.off("exit", killOnExit);
    for (const s of Object.values(services)) await s.stop().catch(() => {});
    await proxy?.close();
  };
  try {
    await Promise.all(Object.values(services).map((s) => s.start()));
    await run(process.execPath, [path.join(root, "scripts/ensure-buckets.mjs"), "--wait", "15"], { cwd: root, env: { ...process.env, ...s3Env } });
    const admin = await mysql.createConnection({ host: "127.0.0.1", port: dbPort, user: "root" });
    await admin.query("CREATE DATABASE reclo_faults CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
    await admin.end();
  } catch (err) {
    await stopAll();
    throw err;
  }
  const databaseUrl = `mysql://root@127.0.0.1:${dbPort}/reclo_faults`;
  const db = createDatabase(databaseUrl, 1);
  await runMigrations(db);
  await db.close();

  return {
    dir,
    services,
    databaseUrl,
    s3: { endpoint: s3Endpoint, accessKeyId: S3_KEY, secretAccessKey: S3_SECRET, region: "us-east-1", buckets: Object.values(BUCKETS) },
    env: {
      DATABASE_URL: databaseUrl,
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      TEMPORAL_ADDRESS: `127.0.0.1:${tPort}`,
      TEMPORAL_NAMESPACE: "default",
      ...s3Env,
    },
    stop: stopAll,
  };
}
