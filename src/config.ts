import path from "node:path";
import { z } from "zod";
import { repoRoot } from "./common/paths";

/**
 * The one configuration module. `loadConfig()` reads the environment once at start-up, validates
 * every variable, and throws a ConfigError listing every problem at once. Defaults serve local
 * development (the services started by `scripts/services.sh`).
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "60d", "15m", "30s", "250ms" or a bare number of milliseconds. */
export function parseDuration(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]) * DURATION_UNITS[m[2] ?? "ms"]!;
  return Number.isFinite(n) && n >= 0 ? Math.round(n) : undefined;
}

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined) {
        ctx.addIssue({ code: "custom", message: `expected a duration like 60d, 15m, 30s or 500ms, got "${v}"` });
        return z.NEVER;
      }
      return ms;
    });

const int = (fallback: number, min: number, max: number) =>
  z.coerce
    .number({ error: "expected a whole number" })
    .int("expected a whole number")
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(fallback);

const bool = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"], { error: "expected true or false" })
    .optional()
    .transform((v) => (v === undefined ? fallback : ["true", "1", "yes"].includes(v)));

const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `expected a URL starting with ${protocols.map((p) => p + "//").join(" or ")}` },
  );

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v));


const envSchema = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: int(4000, 0, 65535),
  /** Public base URL printed at start and used in links; defaults to http://HOST:PORT. */
  PUBLIC_URL: optionalString.pipe(url(["http:", "https:"]).optional()),
  TRUST_PROXY: bool(false),
  RECLO_DATA_DIR: z.string().default(path.join(repoRoot(), ".data")),

  DATABASE_URL: url(["mysql:", "mariadb:"]).default("mysql://root@127.0.0.1:3306/reclo"),
  DATABASE_POOL_SIZE: int(10, 1, 200),
  MIGRATE_ON_START: bool(true),

  TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, "expected host:port").default("127.0.0.1:7233"),
  TEMPORAL_NAMESPACE: z.string().min(1).default("default"),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default("reclo"),
  /** Temporal Cloud API key (implies TLS). */
  TEMPORAL_API_KEY: optionalString,
  TEMPORAL_TLS: bool(false),
  TEMPORAL_TLS_CERT_PATH: optionalString,
  TEMPORAL_TLS_KEY_PATH: optionalString,
  TEMPORAL_TLS_CA_PATH: optionalString,
  TEMPORAL_TLS_SERVER_NAME: optionalString,

  S3_ENDPOINT: optionalString.pipe(url(["http:", "https:"]).optional()).default("http://127.0.0.1:7070"),
  S3_REGION: z.string().min(1).default("us-east-1"),
  S3_ACCESS_KEY_ID: z.string().min(1).default("reclo-dev"),
  S3_SECRET_ACCESS_KEY: z.string().min(1).default("reclo-dev-secret-key-0123456789"),
  S3_FORCE_PATH_STYLE: bool(true),
  S3_BACKUPS_BUCKET: z.string().min(3).default("reclo-backups"),
  S3_IMPORTS_BUCKET: z.string().min(3).default("reclo-imports"),
  S3_ARTIFACTS_BUCKET: z.string().min(3).default("reclo-artifacts"),

  /** Lifetime of presigned chunk upload URLs. */
  S3_PRESIGN_EXPIRY: duration("15m"),
  /** Chunks younger than this are never garbage-collected (an upload may be writing them). */
  GC_GRACE: duration("1h"),
  /** How often the backup-maintenance schedule (retention, then chunk GC) runs. */
  BACKUP_MAINTENANCE_INTERVAL: duration("6h"),

  /** Recovery target when startRecovery names none: AWS only when configured, else the local QEMU host. */
  RECOVERY_DEFAULT_TARGET: z.enum(["AWS", "LOCAL"]).optional(),
  /** Hard limit of a recovery, measured from its start. */
  RECOVERY_TIME_LIMIT: duration("24h"),
  /** workflowExecutionTimeout = RECOVERY_TIME_LIMIT + this (a backstop; the workflow's own limit is exact). */
  RECOVERY_BACKSTOP: duration("1h"),
  /** A worker that dies mid-step is noticed after this long (activity heartbeat timeout). */
  RECOVERY_HEARTBEAT_TIMEOUT: duration("60s"),
  /** How often import/launch progress is polled. */
  RECOVERY_POLL_INTERVAL: duration("15s"),
  /** Stopped instances older than this are terminated by the daily schedule. */
  INSTANCE_STOPPED_TTL: duration("14d"),

  AWS_RECOVERY_ENABLED: bool(false),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  /** Endpoint override for EC2 (testing); normally unset. */
  AWS_EC2_ENDPOINT: optionalString.pipe(url(["http:", "https:"]).optional()),
  /** IAM role VM Import uses to read the imports bucket. */
  AWS_IMPORT_ROLE_NAME: z.string().min(1).default("vmimport"),
  AWS_INSTANCE_TYPE: z.string().min(1).default("t3.medium"),
  AWS_SUBNET_ID: optionalString,
  AWS_VPC_ID: optionalString,
  /** Who may reach recovered machines (RDP/SSH) when the request names no range. */
  AWS_DEFAULT_ALLOWED_CIDR: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "expected an IPv4 CIDR like 203.0.113.0/24")
    .optional(),

  QEMU_SYSTEM_BINARY: z.string().min(1).default("qemu-system-x86_64"),
  QEMU_IMG_BINARY: z.string().min(1).default("qemu-img"),
  /** auto: KVM when /dev/kvm is usable, TCG otherwise. */
  QEMU_ACCEL: z.enum(["auto", "kvm", "tcg"]).default("auto"),
  QEMU_MEMORY_MB: int(1024, 16, 262_144),
  QEMU_CPUS: int(2, 1, 64),
  /** Seconds a graceful ACPI power-down may take before QEMU is told to quit. */
  QEMU_STOP_TIMEOUT: duration("60s"),
  /** Bytes per second a local restore may read from S3 (0 = no limit), to spare the host's disk and network. */
  LOCAL_IMPORT_RATE_LIMIT: int(0, 0, Number.MAX_SAFE_INTEGER),

  /** Serial-console text that proves a verified boot ("" = screenshot evidence only). */
  VERIFY_BOOT_MARKER: z.string().max(255).default(""),
  /** After the first decisive boot evidence, keep collecting corroborating evidence (other ports, the screen) at most this long. */
  VERIFY_EVIDENCE_GRACE: duration("10s"),
  /** Nothing decisive (positive or failure) within this long after launch: INCONCLUSIVE. */
  VERIFY_BOOT_TIMEOUT: duration("5m"),
  /** The OCR binary that reads verification screenshots (Debian tesseract-ocr + tesseract-ocr-eng). */
  TESSERACT_BINARY: z.string().min(1).default("tesseract"),
  /** Verify every backup right after it completes. */
  VERIFY_AFTER_BACKUP: bool(false),
  /** A drill (recover the latest restore point in isolation, verify, clean up) is cancelled, and cleaned up, after this long. */
  DRILL_TIME_LIMIT: duration("3h"),
  /** The shortest interval a drill policy may ask for (`every`). */
  DRILL_MIN_INTERVAL: duration("1h"),

  REDIS_URL: optionalString.pipe(url(["redis:", "rediss:"]).optional()),

  TOKEN_TTL: duration("60d"),
  ARGON2_MEMORY_KIB: int(19_456, 8_192, 4_194_304),
  ARGON2_TIME_COST: int(2, 1, 20),
  ARGON2_PARALLELISM: int(1, 1, 16),
  LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: int(10, 1, 10_000),
  LOGIN_MAX_ATTEMPTS_PER_ADDRESS: int(50, 1, 100_000),
  LOGIN_RATE_WINDOW: duration("15m"),

  MAX_QUERY_DEPTH: int(12, 2, 100),
  MAX_QUERY_COST: int(20_000, 10, 10_000_000),
  MAX_PAGE_SIZE: int(100, 1, 1000),
  DEFAULT_PAGE_SIZE: int(20, 1, 1000),
  MAX_BODY_BYTES: int(1_048_576, 1024, 100 * 1_048_576),

  /** The worker registers the product's Temporal Schedules at start. */
  RUN_SCHEDULES: bool(true),
  /** Pre-bundled workflow code (skips bundling at worker start). */
  TEMPORAL_WORKFLOW_BUNDLE: optionalString,
  /** Run the API and the Temporal worker in this process (main entry only). */
  RUN_WORKER: bool(true),
});

export type Env = z.input<typeof envSchema>;

export interface Config {
  env: "development" | "test" | "production";
  logLevel: string;
  http: { host: string; port: number; publicUrl?: string; trustProxy: boolean; maxBodyBytes: number };
  dataDir: string;
  database: { url: string; poolSize: number; migrateOnStart: boolean };
  temporal: {
    address: string;
    namespace: string;
    taskQueue: string;
    apiKey?: string;
    tls?: { certPath?: string; keyPath?: string; caPath?: string; serverName?: string };
  };
  s3: {
    endpoint?: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    forcePathStyle: boolean;
    buckets: { backups: string; imports: string; artifacts: string };
    presignExpiryMs: number;
  };
  backups: { gcGraceMs: number; maintenanceIntervalMs: number };
  recovery: { defaultTarget: "AWS" | "LOCAL"; timeLimitMs: number; backstopMs: number; heartbeatTimeoutMs: number; pollIntervalMs: number; instanceStoppedTtlMs: number };
  verification: { bootMarker?: string; evidenceGraceMs: number; bootTimeoutMs: number; afterBackup: boolean; tesseract: string };
  drills: { timeLimitMs: number; minIntervalMs: number };
  aws: {
    enabled: boolean;
    region: string;
    ec2Endpoint?: string;
    importRoleName: string;
    instanceType: string;
    subnetId?: string;
    vpcId?: string;
    defaultAllowedCidr?: string;
  };
  local: {
    /** Images, overlays, sockets and logs of the local target. */
    dir: string;
    qemuSystem: string;
    qemuImg: string;
    accel: "auto" | "kvm" | "tcg";
    memoryMb: number;
    cpus: number;
    stopTimeoutMs: number;
    /** Bytes per second for the image download (0 = unlimited). */
    importRateLimit: number;
  };
  redisUrl?: string;
  auth: {
    tokenTtlMs: number;
    argon2: { memoryCost: number; timeCost: number; parallelism: number };
    loginRateLimit: { perAccount: number; perAddress: number; windowMs: number };
  };
  limits: { maxDepth: number; maxCost: number; maxPageSize: number; defaultPageSize: number };
  runWorker: boolean;
  runSchedules: boolean;
  workflowBundlePath?: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
    this.name = "ConfigError";
  }
}

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const result = envSchema.safeParse(source);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => {
        const key = String(i.path[0] ?? "environment");
        const raw = source[key];
        const shown = raw === undefined || /SECRET|PASSWORD|KEY|TOKEN/.test(key) ? "" : ` (got "${raw}")`;
        return `${key}: ${i.message}${shown}`;
      }),
    );
  }
  const e = result.data;
  const problems: string[] = [];
  if (e.S3_PRESIGN_EXPIRY < 1000 || e.S3_PRESIGN_EXPIRY > 7 * 86_400_000) problems.push("S3_PRESIGN_EXPIRY: must be between 1s and 7d");
  if (e.RECOVERY_DEFAULT_TARGET === "AWS" && !e.AWS_RECOVERY_ENABLED) problems.push("RECOVERY_DEFAULT_TARGET: AWS needs AWS_RECOVERY_ENABLED=true (and AWS credentials)");
  if (e.DEFAULT_PAGE_SIZE > e.MAX_PAGE_SIZE) problems.push("DEFAULT_PAGE_SIZE: must not exceed MAX_PAGE_SIZE");
  if (Boolean(e.TEMPORAL_TLS_CERT_PATH) !== Boolean(e.TEMPORAL_TLS_KEY_PATH))
    problems.push("TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH: set both for mTLS, or neither");
  if (e.NODE_ENV === "production" && e.S3_SECRET_ACCESS_KEY === "reclo-dev-secret-key-0123456789")
    problems.push("S3_SECRET_ACCESS_KEY: the development default must not be used in production");
  if (problems.length) throw new ConfigError(problems);

  const useTls = e.TEMPORAL_TLS || Boolean(e.TEMPORAL_API_KEY) || Boolean(e.TEMPORAL_TLS_CERT_PATH);
  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    http: { host: e.HOST, port: e.PORT, publicUrl: e.PUBLIC_URL, trustProxy: e.TRUST_PROXY, maxBodyBytes: e.MAX_BODY_BYTES },
    dataDir: path.resolve(e.RECLO_DATA_DIR),
    database: { url: e.DATABASE_URL, poolSize: e.DATABASE_POOL_SIZE, migrateOnStart: e.MIGRATE_ON_START },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      apiKey: e.TEMPORAL_API_KEY,
      tls: useTls
        ? { certPath: e.TEMPORAL_TLS_CERT_PATH, keyPath: e.TEMPORAL_TLS_KEY_PATH, caPath: e.TEMPORAL_TLS_CA_PATH, serverName: e.TEMPORAL_TLS_SERVER_NAME }
        : undefined,
    },
    s3: {
      endpoint: e.S3_ENDPOINT,
      region: e.S3_REGION,
      accessKeyId: e.S3_ACCESS_KEY_ID,
      secretAccessKey: e.S3_SECRET_ACCESS_KEY,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
      buckets: { backups: e.S3_BACKUPS_BUCKET, imports: e.S3_IMPORTS_BUCKET, artifacts: e.S3_ARTIFACTS_BUCKET },
      presignExpiryMs: e.S3_PRESIGN_EXPIRY,
    },
    backups: { gcGraceMs: e.GC_GRACE, maintenanceIntervalMs: e.BACKUP_MAINTENANCE_INTERVAL },
    recovery: {
      defaultTarget: e.RECOVERY_DEFAULT_TARGET ?? (e.AWS_RECOVERY_ENABLED ? "AWS" : "LOCAL"),
      timeLimitMs: e.RECOVERY_TIME_LIMIT,
      backstopMs: e.RECOVERY_BACKSTOP,
      heartbeatTimeoutMs: e.RECOVERY_HEARTBEAT_TIMEOUT,
      pollIntervalMs: e.RECOVERY_POLL_INTERVAL,
      instanceStoppedTtlMs: e.INSTANCE_STOPPED_TTL,
    },
    verification: {
      bootMarker: e.VERIFY_BOOT_MARKER === "" ? undefined : e.VERIFY_BOOT_MARKER,
      evidenceGraceMs: e.VERIFY_EVIDENCE_GRACE,
      bootTimeoutMs: e.VERIFY_BOOT_TIMEOUT,
      tesseract: e.TESSERACT_BINARY,
      afterBackup: e.VERIFY_AFTER_BACKUP,
    },
    drills: { timeLimitMs: e.DRILL_TIME_LIMIT, minIntervalMs: e.DRILL_MIN_INTERVAL },
    aws: {
      enabled: e.AWS_RECOVERY_ENABLED,
      region: e.AWS_REGION,
      ec2Endpoint: e.AWS_EC2_ENDPOINT,
      importRoleName: e.AWS_IMPORT_ROLE_NAME,
      instanceType: e.AWS_INSTANCE_TYPE,
      subnetId: e.AWS_SUBNET_ID,
      vpcId: e.AWS_VPC_ID,
      defaultAllowedCidr: e.AWS_DEFAULT_ALLOWED_CIDR,
    },
    local: {
      dir: path.join(path.resolve(e.RECLO_DATA_DIR), "local-target"),
      qemuSystem: e.QEMU_SYSTEM_BINARY,
      qemuImg: e.QEMU_IMG_BINARY,
      accel: e.QEMU_ACCEL,
      memoryMb: e.QEMU_MEMORY_MB,
      cpus: e.QEMU_CPUS,
      stopTimeoutMs: e.QEMU_STOP_TIMEOUT,
      importRateLimit: e.LOCAL_IMPORT_RATE_LIMIT,
    },
    redisUrl: e.REDIS_URL,
    auth: {
      tokenTtlMs: e.TOKEN_TTL,
      argon2: { memoryCost: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_TIME_COST, parallelism: e.ARGON2_PARALLELISM },
      loginRateLimit: { perAccount: e.LOGIN_MAX_ATTEMPTS_PER_ACCOUNT, perAddress: e.LOGIN_MAX_ATTEMPTS_PER_ADDRESS, windowMs: e.LOGIN_RATE_WINDOW },
    },
    limits: { maxDepth: e.MAX_QUERY_DEPTH, maxCost: e.MAX_QUERY_COST, maxPageSize: e.MAX_PAGE_SIZE, defaultPageSize: e.DEFAULT_PAGE_SIZE },
    runWorker: e.RUN_WORKER,
    runSchedules: e.RUN_SCHEDULES,
    workflowBundlePath: e.TEMPORAL_WORKFLOW_BUNDLE,
  };
}
