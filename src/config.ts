import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { repoRoot } from "./shared/paths";

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

export type TrustProxy = false | number | string[];

/**
 * TRUST_PROXY: unset, "false" or "0" = no proxy (the socket's address is the client); a number =
 * that many proxy hops in front of ReClo (the client is the address the outermost one saw); a
 * comma-separated list of addresses and CIDRs = the proxies themselves. "true" would believe any
 * client's X-Forwarded-For and is refused.
 */
export function parseTrustProxy(value: string | undefined): TrustProxy | { problem: string } {
  const v = value?.trim() ?? "";
  if (v === "" || v === "false" || v === "0") return false;
  if (["true", "yes", "all"].includes(v.toLowerCase()))
    return {
      problem:
        '"true" would believe the X-Forwarded-For any client sends (and so bypass every per-address limit); set the number of proxy hops in front of ReClo (e.g. 1) or the proxies\' addresses/CIDRs (e.g. 10.0.0.0/8,192.168.1.10)',
    };
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    return hops <= 10 ? hops : { problem: "expected at most 10 proxy hops" };
  }
  const entries = v.split(",").map((s) => s.trim()).filter(Boolean);
  const bad = entries.filter((entry) => !isAddressOrCidr(entry));
  if (bad.length) return { problem: `expected a hop count or a comma-separated list of IP addresses/CIDRs; not an address or CIDR: ${bad.join(", ")}` };
  return entries;
}

function isAddressOrCidr(entry: string): boolean {
  const [address, prefix, ...rest] = entry.split("/");
  const family = net.isIP(address ?? "");
  if (!family || rest.length) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

function isLoopbackUrl(value: string): boolean {
  try {
    const host = new URL(value).hostname.replace(/^\[|\]$/g, "");
    return host === "localhost" || host === "::1" || (net.isIPv4(host) && host.startsWith("127."));
  } catch {
    return false;
  }
}

const BYTE_UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** Parses "2TiB", "512GiB", "1.5T", "64MB" (binary units, 1024-based) or a bare number of bytes. */
export function parseBytes(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?b)?|b)?\s*$/i.exec(value);
  if (!m) return undefined;
  const n = Math.floor(Number(m[1]) * BYTE_UNITS[(m[2] ?? "").toLowerCase()]!);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

const bytes = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const n = parseBytes(v);
      if (n === undefined) {
        ctx.addIssue({ code: "custom", message: `expected a size like 2TiB, 512GiB, 64MiB or a number of bytes, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v));


/** A whole number in [min, max], or undefined when unset or empty. */
const optionalInt = (min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return undefined;
      const n = Number(v);
      const problem = !Number.isInteger(n) ? "expected a whole number" : n < min ? `must be at least ${min}` : n > max ? `must be at most ${max}` : undefined;
      if (problem) {
        ctx.addIssue({ code: "custom", message: problem });
        return z.NEVER;
      }
      return n;
    });

/**
 * argon2 runs on libuv's thread pool, which fs, dns.lookup, zlib and crypto's async calls share.
 * Each argon2id hash (m=19 MiB, t=2, p=1) keeps one core busy for tens of milliseconds. With as
 * many hashes at once as there are cores, the event loop (every other request, every WebSocket)
 * has to fight them for CPU: on 2 cores a login storm put the event-loop delay p99 past 100 ms.
 * So by default at most availableParallelism() − 1 hashes run at once (1 on 2 cores), leaving a
 * core to the event loop; ARGON2_CONCURRENCY overrides it (each hash with ARGON2_PARALLELISM > 1
 * uses that many threads of its own: keep concurrency × parallelism below the cores).
 */
export function defaultHashConcurrency(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

/** ARGON2_CONCURRENCY from the environment, or its default (before loadConfig validates it). */
export function hashConcurrencyOf(env: NodeJS.ProcessEnv): number {
  const n = Number(env.ARGON2_CONCURRENCY);
  return Number.isInteger(n) && n >= 1 ? n : defaultHashConcurrency();
}

/**
 * The libuv thread pool is sized deliberately: the argon2 slots plus libuv's own default of 4 for
 * everything else (fs, dns.lookup, zlib, crypto). argon2 can hold at most its slots (the hashing
 * queue bounds it), so file and DNS work never waits behind password hashing, and the pool never
 * runs more CPU-heavy work than the queue allows.
 */
export function threadPoolSizeFor(hashConcurrency: number): number {
  return hashConcurrency + 4;
}

/**
 * OWASP's argon2id minimums (Password Storage Cheat Sheet): equivalent (memory KiB, iterations)
 * pairs, all with parallelism 1. A configuration must reach at least one of them.
 */
export const OWASP_ARGON2ID_MINIMUMS: readonly { memoryKiB: number; timeCost: number }[] = [
  { memoryKiB: 47_104, timeCost: 1 },
  { memoryKiB: 19_456, timeCost: 2 },
  { memoryKiB: 12_288, timeCost: 3 },
  { memoryKiB: 9_216, timeCost: 4 },
  { memoryKiB: 7_168, timeCost: 5 },
];

const envSchema = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: int(4000, 0, 65535),
  /** Public base URL printed at start and used in links; defaults to http://HOST:PORT. */
  PUBLIC_URL: optionalString.pipe(url(["http:", "https:"]).optional()),
  /** Proxies in front of ReClo whose X-Forwarded-For is believed: a hop count or addresses/CIDRs ("true" is refused). */
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const parsed = parseTrustProxy(v);
      if (typeof parsed === "object" && "problem" in parsed) {
        ctx.addIssue({ code: "custom", message: parsed.problem });
        return z.NEVER;
      }
      return parsed;
    }),
  /** Token that unlocks /readyz details for callers that are not on loopback (monitoring). */
  /** How often the readiness checks (and so the breakers of the dependencies) run in the background. */
  READINESS_INTERVAL: duration("1s"),
  /** A readiness check slower than this counts as failing. */
  READINESS_TIMEOUT: duration("2s"),
  READYZ_TOKEN: optionalString.pipe(z.string().min(16, "must be at least 16 characters").optional()),
  RECLO_DATA_DIR: z.string().default(path.join(repoRoot(), ".data")),

  DATABASE_URL: url(["mysql:", "mariadb:"]).default("mysql://root@127.0.0.1:3306/reclo"),
  DATABASE_POOL_SIZE: int(10, 1, 200),
  MIGRATE_ON_START: bool(true),

  TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, "expected host:port").default("127.0.0.1:7233"),
  TEMPORAL_NAMESPACE: z.string().min(1).default("default"),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default("reclo"),
  /** Temporal's web UI, for the history links support reads in Recovery.diagnostics. */
  TEMPORAL_UI_URL: z.string().url().default("http://127.0.0.1:8233"),
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
  /**
   * S3 Object Lock on the backups bucket: every chunk and manifest is written locked for
   * OBJECT_LOCK_DAYS (and a chunk a new restore point references is locked again from then).
   * COMPLIANCE: nobody, not even the bucket owner, deletes a locked version early; GOVERNANCE: only
   * credentials with s3:BypassGovernanceRetention can; OFF: no lock. Default COMPLIANCE in production,
   * OFF in development and test (their shared bucket predates the lock; the lock tests make their own).
   */
  OBJECT_LOCK_MODE: z.enum(["OFF", "GOVERNANCE", "COMPLIANCE"]).optional(),
  /** Days a written or newly referenced backup object stays locked (fractions allowed, at least 1 second). */
  OBJECT_LOCK_DAYS: z.coerce.number().positive().default(30),
  /** Chunks younger than this are never garbage-collected (an upload may be writing them). */
  GC_GRACE: duration("1h"),
  /** Deleting a restore point or shortening retention takes effect only this long after it is asked for (issue 18: the trash). */
  DELETION_DELAY: duration("72h"),
  /** Deleting or shortening retention needs the password re-entered on this session within this window. */
  FRESH_AUTH_WINDOW: duration("5m"),
  /** How often the backup-maintenance schedule (retention, then chunk GC) runs. */
  BACKUP_MAINTENANCE_INTERVAL: duration("6h"),
  /** How often the missed-backup check (every source's latest slot plus its grace) runs. */
  MISSED_BACKUP_CHECK_INTERVAL: duration("5m"),
  /** An UPLOADING backup with no upload activity for this long is ABORTED by maintenance (its chunks become collectable). */
  UPLOAD_EXPIRY: duration("24h"),
  /** Encryption alarm (issue 18): an incremental changing at least this % of the image's chunks… */
  BACKUP_ALARM_CHANGED_PERCENT: int(50, 1, 100),
  /** …and at least this many times the source's usual rate (median of its recent incrementals)… */
  BACKUP_ALARM_RATIO: int(5, 1, 1000),
  /** …into data of at least this entropy (tenths of bits per byte: 75 = 7.5; random data is ~80) is suspected of ransomware. */
  BACKUP_ALARM_ENTROPY_TENTHS: int(75, 0, 80),
  /** While an alarm is unresolved, retention keeps the source's newest this-many clean restore points. */
  BACKUP_ALARM_KEEP_CLEAN: int(3, 1, 1000),

  /** Per user: bytes of distinct chunks referenced by live backups, plus what active uploads were handed URLs for (0 = unlimited). */
  QUOTA_STORED_BYTES: bytes("2TiB"),
  /** Largest disk image a backup may declare (0 = the largest the chunk format allows, about 19.5 TiB). */
  QUOTA_MAX_IMAGE_BYTES: bytes("16TiB"),
  /** Per user: recoveries in progress at the same time (0 = unlimited). */
  QUOTA_CONCURRENT_RECOVERIES: int(2, 0, 10_000),
  /** Per user: machines running or being recovered at the same time, on any target (0 = unlimited). */
  QUOTA_RUNNING_MACHINES: int(4, 0, 10_000),
  /** Per local host: QEMU machines running or being recovered/verified, for all users together (0 = unlimited). */
  HOST_MAX_RUNNING_MACHINES: int(8, 0, 10_000),
  /** Disk space a local import must leave free on the local target's file system. */
  LOCAL_IMPORT_DISK_RESERVE: bytes("2GiB"),

  /** Recovery target when startRecovery names none: AWS only when configured, else the local QEMU host. */
  RECOVERY_DEFAULT_TARGET: z.enum(["AWS", "LOCAL"]).optional(),
  /** Hard limit of a recovery, measured from its start. */
  RECOVERY_TIME_LIMIT: duration("24h"),
  /** workflowExecutionTimeout = RECOVERY_TIME_LIMIT + this (a backstop; the workflow's own limit is exact). */
  RECOVERY_BACKSTOP: duration("1h"),
  /** A worker that dies mid-step is noticed after this long (activity heartbeat timeout). */
  // Steps heartbeat every second whether or not they progress (src/recoveries/heartbeat.ts), so a
  // few missed seconds already mean a dead worker: its step is retried elsewhere after this long.
  RECOVERY_HEARTBEAT_TIMEOUT: duration("20s"),
  /** How often import/launch progress is polled. */
  RECOVERY_POLL_INTERVAL: duration("15s"),
  /** After launch, how long the boot check waits for a sign that the machine started before it says INCONCLUSIVE. */
  RECOVERY_BOOT_CHECK_TIMEOUT: duration("10m"),
  /** Stopped instances older than this are terminated by the daily schedule. */
  INSTANCE_STOPPED_TTL: duration("14d"),

  AWS_RECOVERY_ENABLED: bool(false),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  /** Endpoint override for EC2 (testing); normally unset. */
  AWS_EC2_ENDPOINT: optionalString.pipe(url(["http:", "https:"]).optional()),
  /** IAM role VM Import uses to read the imports bucket. */
  AWS_IMPORT_ROLE_NAME: z.string().min(1).default("vmimport"),
  AWS_INSTANCE_TYPE: z.string().min(1).default("t3.medium"),
  /** Renamed to AWS_PRIVATE_SUBNET_ID (recovered machines no longer get a public address). */
  AWS_SUBNET_ID: optionalString,
  /** Subnet recovered machines launch into, without a public address (no route from the internet). */
  AWS_PRIVATE_SUBNET_ID: optionalString,
  /** Subnet (with an internet gateway route) of the access points' WireGuard gateways. */
  AWS_PUBLIC_SUBNET_ID: optionalString,
  AWS_VPC_ID: optionalString,
  /** AMI of the WireGuard gateways (Debian 12 / Amazon Linux 2023; arm64 for t4g). Private access on AWS needs it. */
  AWS_GATEWAY_AMI_ID: optionalString,
  AWS_GATEWAY_INSTANCE_TYPE: z.string().min(1).default("t4g.nano"),
  AWS_GATEWAY_PORT: int(51820, 1, 65_535),
  /** Kept for the API's allowedCidr check; on AWS nothing is opened to a CIDR any more (issue 15). */
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
  /** Unprivileged user QEMU switches to (-runas); default reclo-qemu when the worker runs as root. */
  QEMU_RUNAS: optionalString.pipe(
    z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "expected a user name like reclo-qemu")
      .optional(),
  ),
  /** Bytes per second a local restore may read from S3 (0 = no limit), to spare the host's disk and network. */
  LOCAL_IMPORT_RATE_LIMIT: int(0, 0, Number.MAX_SAFE_INTEGER),

  /** Local target's WireGuard access points (issue 15): the address their UDP ports are bound on. */
  VPN_LISTEN_ADDRESS: z
    .string()
    .default("0.0.0.0")
    .refine((v) => net.isIP(v) !== 0, "expected an IP address (0.0.0.0 = every IPv4 address)"),
  /** The host WireGuard clients are told to connect to (default: the listen address, or this host's first non-loopback IPv4). */
  VPN_PUBLIC_ENDPOINT: optionalString.pipe(
    z
      .string()
      .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+|[0-9A-Fa-f:]+)$/, "expected a host name or IP address (no port)")
      .optional(),
  ),
  /** UDP ports the access points take, one each: "first-last". */
  VPN_PORT_RANGE: z
    .string()
    .default("51820-51919")
    .transform((v, ctx) => {
      const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(v);
      const first = Number(m?.[1]);
      const last = Number(m?.[2]);
      if (!m || first < 1 || last > 65_535 || first > last) {
        ctx.addIssue({ code: "custom", message: `expected a UDP port range like 51820-51919, got "${v}"` });
        return z.NEVER;
      }
      return { first, last };
    }),
  /** The userspace WireGuard helper (built by scripts/services.sh up into RECLO_DATA_DIR/bin). */
  VPN_HELPER_BINARY: optionalString,
  /** Unprivileged user the helper drops to once its sockets are open; default reclo-wg when the worker runs as root. */
  VPN_RUNAS: optionalString.pipe(
    z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "expected a user name like reclo-wg")
      .optional(),
  ),

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
  /** How long an API process may answer a token from memory (revocations still apply at once through the event bus); 0s = look it up on every request. */
  SESSION_CACHE_TTL: duration("10s"),
  ARGON2_MEMORY_KIB: int(19_456, 8_192, 4_194_304),
  ARGON2_TIME_COST: int(2, 1, 20),
  ARGON2_PARALLELISM: int(1, 1, 16),
  /** argon2 operations running at once (see hashConcurrencyOf). */
  ARGON2_CONCURRENCY: int(defaultHashConcurrency(), 1, 256),
  /** argon2 operations waiting for a slot before the next is refused BUSY (default 32 per ARGON2_CONCURRENCY). */
  ARGON2_MAX_WAITING: optionalInt(0, 100_000),
  /** libuv's own variable, read once when its thread pool starts (set by src/threadpool.ts when unset); checked here. */
  UV_THREADPOOL_SIZE: optionalInt(1, 1024),
  LOGIN_MAX_ATTEMPTS_PER_ACCOUNT: int(10, 1, 10_000),
  LOGIN_MAX_ATTEMPTS_PER_ADDRESS: int(50, 1, 100_000),
  LOGIN_RATE_WINDOW: duration("15m"),
  SIGNUP_MAX_PER_ADDRESS: int(20, 1, 1_000_000),
  SIGNUP_RATE_WINDOW: duration("1h"),
  /** Recoveries, drills and boot verifications need a verified e-mail address (EMAIL_NOT_VERIFIED otherwise). */
  REQUIRE_VERIFIED_EMAIL: bool(true),
  /** How long an address-verification link works. */
  EMAIL_VERIFICATION_TTL: duration("24h"),
  /** How long a password-reset link works. */
  PASSWORD_RESET_TTL: duration("1h"),
  /** Account e-mails (verification, password reset) per account, and password-reset requests per client address, per ACCOUNT_MAIL_RATE_WINDOW. */
  ACCOUNT_MAIL_MAX_PER_ACCOUNT: int(5, 1, 10_000),
  PASSWORD_RESET_MAX_PER_ADDRESS: int(20, 1, 1_000_000),
  ACCOUNT_MAIL_RATE_WINDOW: duration("1h"),
  /** Token redemptions (verifyEmail, resetPassword) per client address per 15 minutes. */
  ACCOUNT_TOKEN_MAX_PER_ADDRESS: int(60, 1, 1_000_000),

  /** 15 admits the standard introspection query (GraphiQL), which is counted like any other operation. */
  MAX_QUERY_DEPTH: int(15, 2, 100),
  MAX_QUERY_COST: int(20_000, 10, 10_000_000),
  MAX_PAGE_SIZE: int(100, 1, 1000),
  DEFAULT_PAGE_SIZE: int(20, 1, 1000),
  MAX_BODY_BYTES: int(1_048_576, 1024, 100 * 1_048_576),
  /** A GraphQL request at least this slow is logged at info; faster successful ones only at debug (and counted in a summary line once a minute). */
  ACCESS_LOG_SLOW: duration("1s"),
  /** Lexical tokens in one GraphQL document; counted before it is parsed. */
  MAX_QUERY_TOKENS: int(3000, 100, 1_000_000),
  /** Aliased fields in one operation (fragments counted once per spread). */
  MAX_QUERY_ALIASES: int(30, 0, 10_000),
  /** Root fields of one mutation operation; `signUp` and `logIn` at most once per request regardless. */
  MAX_MUTATIONS: int(10, 1, 1000),
  /** Who may run schema introspection (`__schema`, `__type`): signed-in users only, or everyone. */
  INTROSPECTION: z.enum(["authenticated", "public"]).default("authenticated"),
  /** Estimated cost of one evaluation of an expensive field (restorable, consoleOutput, screenshot). */
  EXPENSIVE_FIELD_COST: int(100, 1, 1_000_000),
  /** Operations selecting an expensive field, per user (per address when anonymous) and window. */
  EXPENSIVE_FIELD_RATE: int(120, 1, 1_000_000),
  EXPENSIVE_FIELD_WINDOW: duration("1m"),

  /** A WebSocket that sends no connection_init within this long is closed (4408). */
  WS_INIT_TIMEOUT: duration("3s"),
  /** Estimated bytes of parsed documents kept for reuse by authenticated WebSocket connections. */
  WS_DOCUMENT_CACHE_BYTES: int(8 * 1_048_576, 0, 1024 * 1_048_576),
  WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: int(20, 1, 10_000),
  /** Per user across their connections to this API process. */
  WS_MAX_SUBSCRIPTIONS_PER_USER: int(100, 1, 1_000_000),

  /**
   * The key that encrypts secrets at rest (access points' WireGuard private keys): base64 of 32
   * random bytes. Or SECRETS_KEY_FILE, a file holding it. Neither set: <RECLO_DATA_DIR>/secrets.key,
   * which development and test create when missing and production refuses to go without
   * (scripts/start.sh and test.sh create it once, mode 0600; never commit it).
   */
  SECRETS_KEY: optionalString,
  SECRETS_KEY_FILE: optionalString,
  /** Live access keys (devices) per recovered machine (at most 253: one tunnel address each). */
  ACCESS_KEY_LIMIT: int(20, 1, 253),
  /** An access key stops working this long after it was created. */
  ACCESS_KEY_TTL: duration("90d"),

  /**
   * Outgoing e-mail (alerts, address verification, password resets): an smtp:// or smtps:// URL,
   * user and password in it when the relay wants them. The default is the local mailpit that
   * scripts/services.sh starts (its inbox: http://127.0.0.1:8025).
   */
  SMTP_URL: z.string().default("smtp://127.0.0.1:1025").pipe(url(["smtp:", "smtps:"])),
  /** The From of every e-mail. */
  MAIL_FROM: z.string().min(3).default("ReClo <no-reply@reclo.localhost>"),
  /** One SMTP send gives up after this long (the caller retries). */
  SMTP_TIMEOUT: duration("15s"),

  /**
   * Webhooks (issue 16). Addresses that resolve to loopback, private, link-local (cloud metadata,
   * 169.254.169.254) or other non-public ranges are refused, when a webhook is added and again at
   * each delivery, unless this is true (a receiver on this host: development and tests only).
   */
  WEBHOOK_ALLOW_PRIVATE_ADDRESSES: bool(false),
  /** One webhook POST gives up after this long (connect, send, answer). */
  WEBHOOK_TIMEOUT: duration("10s"),
  /** Webhooks per user. */
  WEBHOOK_LIMIT: int(10, 1, 100),
  /** First wait before retrying a failed delivery (doubles per attempt). */
  WEBHOOK_RETRY_INITIAL: duration("30s"),
  /** Longest wait between two attempts. */
  WEBHOOK_RETRY_MAX_INTERVAL: duration("30m"),
  /** A delivery (e-mail or webhook) is retried for at most this long after its first attempt. */
  WEBHOOK_RETRY_FOR: duration("24h"),

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
  /** Background readiness checks: the breakers of the dependencies and /readyz's answer. */
  readiness: { intervalMs: number; timeoutMs: number };
  http: {
    host: string;
    port: number;
    publicUrl?: string;
    /** Express "trust proxy": false (none), a hop count, or the proxies' addresses/CIDRs. */
    trustProxy: TrustProxy;
    maxBodyBytes: number;
    readyzToken?: string;
    /** ACCESS_LOG_SLOW in ms (absent: 1000). */
    accessLogSlowMs?: number;
  };
  dataDir: string;
  database: { url: string; poolSize: number; migrateOnStart: boolean };
  temporal: {
    address: string;
    namespace: string;
    taskQueue: string;
    /** Temporal's web UI (history links for support). */
    uiUrl?: string;
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
    /** Object Lock for chunks and manifests in the backups bucket (null = off). */
    objectLock: { mode: "GOVERNANCE" | "COMPLIANCE"; retentionMs: number } | null;
  };
  backups: {
    gcGraceMs: number;
    maintenanceIntervalMs: number;
    uploadExpiryMs: number;
    missedCheckIntervalMs: number;
    /** Encryption alarm thresholds (defaults: src/backups/encryption-alarm.ts). */
    alarm?: { minChangedPercent: number; minRatio: number; minEntropy: number; keepClean: number };
    /** Deletion defense: how long a deletion waits in the trash; how recent a re-entered password must be. */
    deletionDelayMs?: number;
    freshAuthWindowMs?: number;
  };
  /** Fair-use limits (null = unlimited). */
  quotas: {
    storedBytes: number | null;
    maxImageBytes: number | null;
    concurrentRecoveries: number | null;
    runningMachines: number | null;
    hostRunningMachines: number | null;
  };
  recovery: { defaultTarget: "AWS" | "LOCAL"; timeLimitMs: number; backstopMs: number; heartbeatTimeoutMs: number; pollIntervalMs: number; bootCheckTimeoutMs: number; instanceStoppedTtlMs: number };
  verification: { bootMarker?: string; evidenceGraceMs: number; bootTimeoutMs: number; afterBackup: boolean; tesseract: string };
  drills: { timeLimitMs: number; minIntervalMs: number };
  aws: {
    enabled: boolean;
    region: string;
    ec2Endpoint?: string;
    importRoleName: string;
    instanceType: string;
    privateSubnetId?: string;
    vpcId?: string;
    /** The access points' WireGuard gateways; unset: no private access on AWS. */
    gateway?: { amiId: string; instanceType: string; publicSubnetId: string; port: number };
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
    /** User QEMU runs as (-runas); unset only when the worker itself is not root. */
    runAs: string | undefined;
    /** Bytes per second for the image download (0 = unlimited). */
    importRateLimit: number;
    /** Bytes an import must leave free on the file system of `dir` (default 0). */
    diskReserveBytes?: number;
    /** WireGuard access points of local machines (absent: the local target offers no private access). */
    vpn?: LocalVpnConfig;
  };
  redisUrl?: string;
  auth: {
    tokenTtlMs: number;
    /** SESSION_CACHE_TTL: 0 or absent = no session cache. */
    sessionCacheTtlMs?: number;
    argon2: { memoryCost: number; timeCost: number; parallelism: number };
    /** The hashing queue: argon2 operations running at once, and waiting before BUSY. */
    hashQueue: { concurrency: number; maxWaiting: number };
    loginRateLimit: { perAccount: number; perAddress: number; windowMs: number };
    signUpRateLimit: { perAddress: number; windowMs: number };
    /** E-mail verification and password reset (src/auth/account.service.ts). */
    accounts?: AccountsConfig;
  };
  limits: {
    maxDepth: number;
    maxCost: number;
    maxPageSize: number;
    defaultPageSize: number;
    maxTokens: number;
    maxAliases: number;
    maxMutations: number;
    expensiveFieldCost: number;
  };
  /** `authenticated`: introspection only with a valid token; `public`: for everyone. */
  introspection: "authenticated" | "public";
  expensiveFieldRate: { limit: number; windowMs: number };
  ws: { initTimeoutMs: number; documentCacheBytes: number; maxSubscriptionsPerConnection: number; maxSubscriptionsPerUser: number };
  /** SECRETS_KEY: 32 bytes (non-enumerable, so the config never prints it). `source` says where it came from. */
  secrets: { readonly key: Buffer; source: string };
  /** Private access (WireGuard) keys: live keys per machine, and how long one works. */
  accessKeys: { perMachine: number; ttlMs: number };
  /** Outgoing e-mail; `linkBase` starts every link in a mail (PUBLIC_URL, else http://HOST:PORT). */
  mail: { smtpUrl: string; from: string; timeoutMs: number; linkBase: string };
  /** Notification delivery by webhook (and the retry policy of e-mail and webhook deliveries). */
  webhooks: { allowPrivateAddresses: boolean; timeoutMs: number; perUser: number; retry: { initialIntervalMs: number; maximumIntervalMs: number; totalMs: number } };
  runWorker: boolean;
  runSchedules: boolean;
  workflowBundlePath?: string;
}

/** E-mail verification and password reset. */
export interface AccountsConfig {
  requireVerifiedEmail: boolean;
  verificationTtlMs: number;
  resetTtlMs: number;
  /** Account mails per account (`perAccount`) and reset requests per client address (`perAddress`). */
  mailRateLimit: { perAccount: number; perAddress: number; windowMs: number };
  /** verifyEmail / resetPassword attempts per client address. */
  tokenRateLimit: { perAddress: number; windowMs: number };
}

export const DEFAULT_ACCOUNTS_CONFIG: AccountsConfig = {
  requireVerifiedEmail: true,
  verificationTtlMs: 24 * 3_600_000,
  resetTtlMs: 3_600_000,
  mailRateLimit: { perAccount: 5, perAddress: 20, windowMs: 3_600_000 },
  tokenRateLimit: { perAddress: 60, windowMs: 15 * 60_000 },
};

export interface LocalVpnConfig {
  /** reclo-wg, the userspace WireGuard helper (src/compute/local/wireguard). */
  helperBinary: string;
  /** Address the access points' UDP ports are bound on (VPN_LISTEN_ADDRESS). */
  listenAddress: string;
  /** Host clients connect to (VPN_PUBLIC_ENDPOINT, or derived). */
  publicHost: string;
  /** UDP ports to take from, inclusive. */
  portRange: { first: number; last: number };
  /** The user the helper drops to (VPN_RUNAS); unset only when the worker itself is not root. */
  runAs?: string;
}

/**
 * Where WireGuard clients reach this host when VPN_PUBLIC_ENDPOINT is unset: the listen address
 * when it is a specific one, else the first non-loopback IPv4 address of this host (127.0.0.1
 * when there is none).
 */
export function defaultVpnPublicHost(listenAddress: string, interfaces = os.networkInterfaces()): string {
  if (listenAddress !== "0.0.0.0" && listenAddress !== "::") return net.isIPv6(listenAddress) ? `[${listenAddress}]` : listenAddress;
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (a.family === "IPv4" && !a.internal) return a.address;
    }
  }
  return "127.0.0.1";
}

/** The user the local access points' WireGuard helper drops to when the worker runs as root (scripts/services.sh up creates it). */
export const DEFAULT_VPN_RUNAS = "reclo-wg";

/** The user QEMU drops to when the worker runs as root (scripts/services.sh up --with-qemu creates it). */
export const DEFAULT_QEMU_RUNAS = "reclo-qemu";

function runningAsRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
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
  const objectLockMode = e.OBJECT_LOCK_MODE ?? (e.NODE_ENV === "production" ? "COMPLIANCE" : "OFF");
  const objectLockMs = Math.round(e.OBJECT_LOCK_DAYS * 86_400_000);
  if (objectLockMs < 1000) problems.push("OBJECT_LOCK_DAYS: must be at least one second");
  if (e.RECOVERY_DEFAULT_TARGET === "AWS" && !e.AWS_RECOVERY_ENABLED) problems.push("RECOVERY_DEFAULT_TARGET: AWS needs AWS_RECOVERY_ENABLED=true (and AWS credentials)");
  if (e.AWS_SUBNET_ID) problems.push("AWS_SUBNET_ID: renamed to AWS_PRIVATE_SUBNET_ID (recovered machines launch without a public address; reach them through their access point)");
  if (!!e.AWS_GATEWAY_AMI_ID !== !!e.AWS_PUBLIC_SUBNET_ID) problems.push("AWS_GATEWAY_AMI_ID and AWS_PUBLIC_SUBNET_ID: set both for private access on AWS, or neither");
  if (e.AWS_GATEWAY_AMI_ID && !e.AWS_VPC_ID) problems.push("AWS_VPC_ID: required with AWS_GATEWAY_AMI_ID (the VPC of AWS_PUBLIC_SUBNET_ID and AWS_PRIVATE_SUBNET_ID, where the security groups go)");
  if (e.WS_INIT_TIMEOUT < 100 || e.WS_INIT_TIMEOUT > 600_000) problems.push("WS_INIT_TIMEOUT: must be between 100ms and 10m (0 would never close a silent connection)");
  if (e.DEFAULT_PAGE_SIZE > e.MAX_PAGE_SIZE) problems.push("DEFAULT_PAGE_SIZE: must not exceed MAX_PAGE_SIZE");
  if (Boolean(e.TEMPORAL_TLS_CERT_PATH) !== Boolean(e.TEMPORAL_TLS_KEY_PATH))
    problems.push("TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH: set both for mTLS, or neither");
  // The published development secret is refused in production, except for an object store the
  // operator explicitly placed on this host's loopback (the local versitygw `npm start` runs).
  if (e.NODE_ENV === "production" && e.S3_SECRET_ACCESS_KEY === "reclo-dev-secret-key-0123456789" && !(source.S3_ENDPOINT && isLoopbackUrl(e.S3_ENDPOINT)))
    problems.push("S3_SECRET_ACCESS_KEY: the development default must not be used in production (only with an explicit loopback S3_ENDPOINT)");
  if (!OWASP_ARGON2ID_MINIMUMS.some((m) => e.ARGON2_MEMORY_KIB >= m.memoryKiB && e.ARGON2_TIME_COST >= m.timeCost))
    problems.push(
      `ARGON2_MEMORY_KIB and ARGON2_TIME_COST: ${e.ARGON2_MEMORY_KIB} KiB × ${e.ARGON2_TIME_COST} is below OWASP's argon2id minimums (one of ${OWASP_ARGON2ID_MINIMUMS.map((m) => `${m.memoryKiB} KiB × ${m.timeCost}`).join(", ")})`,
    );
  if (e.UV_THREADPOOL_SIZE !== undefined && e.UV_THREADPOOL_SIZE <= e.ARGON2_CONCURRENCY)
    problems.push(`UV_THREADPOOL_SIZE: ${e.UV_THREADPOOL_SIZE} leaves no thread for file and DNS work beside ${e.ARGON2_CONCURRENCY} argon2 slots (ARGON2_CONCURRENCY); unset it (default ${threadPoolSizeFor(e.ARGON2_CONCURRENCY)}) or raise it`);
  if (e.VPN_RUNAS === "root") problems.push("VPN_RUNAS: the WireGuard helper must not run as root; name an unprivileged user (default reclo-wg)");
  if (e.QEMU_RUNAS === "root") problems.push("QEMU_RUNAS: QEMU must not run as root; name an unprivileged user (default reclo-qemu)");
  const secrets = secretsKeyOf(e.SECRETS_KEY, e.SECRETS_KEY_FILE, path.resolve(e.RECLO_DATA_DIR), e.NODE_ENV, problems);
  if (problems.length || !secrets) throw new ConfigError(problems);

  const useTls = e.TEMPORAL_TLS || Boolean(e.TEMPORAL_API_KEY) || Boolean(e.TEMPORAL_TLS_CERT_PATH);
  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    readiness: { intervalMs: e.READINESS_INTERVAL, timeoutMs: e.READINESS_TIMEOUT },
    http: { host: e.HOST, port: e.PORT, publicUrl: e.PUBLIC_URL, trustProxy: e.TRUST_PROXY, maxBodyBytes: e.MAX_BODY_BYTES, readyzToken: e.READYZ_TOKEN, accessLogSlowMs: e.ACCESS_LOG_SLOW },
    dataDir: path.resolve(e.RECLO_DATA_DIR),
    database: { url: e.DATABASE_URL, poolSize: e.DATABASE_POOL_SIZE, migrateOnStart: e.MIGRATE_ON_START },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      uiUrl: e.TEMPORAL_UI_URL,
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
      objectLock: objectLockMode === "OFF" ? null : { mode: objectLockMode, retentionMs: objectLockMs },
    },
    backups: { gcGraceMs: e.GC_GRACE, maintenanceIntervalMs: e.BACKUP_MAINTENANCE_INTERVAL, uploadExpiryMs: e.UPLOAD_EXPIRY,
      missedCheckIntervalMs: e.MISSED_BACKUP_CHECK_INTERVAL,
      alarm: { minChangedPercent: e.BACKUP_ALARM_CHANGED_PERCENT, minRatio: e.BACKUP_ALARM_RATIO, minEntropy: e.BACKUP_ALARM_ENTROPY_TENTHS / 10, keepClean: e.BACKUP_ALARM_KEEP_CLEAN },
      deletionDelayMs: e.DELETION_DELAY,
      freshAuthWindowMs: e.FRESH_AUTH_WINDOW,
    },
    quotas: {
      storedBytes: e.QUOTA_STORED_BYTES || null,
      maxImageBytes: e.QUOTA_MAX_IMAGE_BYTES || null,
      concurrentRecoveries: e.QUOTA_CONCURRENT_RECOVERIES || null,
      runningMachines: e.QUOTA_RUNNING_MACHINES || null,
      hostRunningMachines: e.HOST_MAX_RUNNING_MACHINES || null,
    },
    recovery: {
      defaultTarget: e.RECOVERY_DEFAULT_TARGET ?? (e.AWS_RECOVERY_ENABLED ? "AWS" : "LOCAL"),
      timeLimitMs: e.RECOVERY_TIME_LIMIT,
      backstopMs: e.RECOVERY_BACKSTOP,
      heartbeatTimeoutMs: e.RECOVERY_HEARTBEAT_TIMEOUT,
      pollIntervalMs: e.RECOVERY_POLL_INTERVAL,
      bootCheckTimeoutMs: e.RECOVERY_BOOT_CHECK_TIMEOUT,
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
      privateSubnetId: e.AWS_PRIVATE_SUBNET_ID,
      vpcId: e.AWS_VPC_ID,
      ...(e.AWS_GATEWAY_AMI_ID && e.AWS_PUBLIC_SUBNET_ID
        ? { gateway: { amiId: e.AWS_GATEWAY_AMI_ID, instanceType: e.AWS_GATEWAY_INSTANCE_TYPE, publicSubnetId: e.AWS_PUBLIC_SUBNET_ID, port: e.AWS_GATEWAY_PORT } }
        : {}),
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
      runAs: e.QEMU_RUNAS ?? (runningAsRoot() ? DEFAULT_QEMU_RUNAS : undefined),
      importRateLimit: e.LOCAL_IMPORT_RATE_LIMIT,
      diskReserveBytes: e.LOCAL_IMPORT_DISK_RESERVE,
      vpn: {
        helperBinary: e.VPN_HELPER_BINARY ?? path.join(path.resolve(e.RECLO_DATA_DIR), "bin", "reclo-wg"),
        listenAddress: e.VPN_LISTEN_ADDRESS,
        publicHost: e.VPN_PUBLIC_ENDPOINT ?? defaultVpnPublicHost(e.VPN_LISTEN_ADDRESS),
        portRange: e.VPN_PORT_RANGE,
        runAs: e.VPN_RUNAS ?? (runningAsRoot() ? DEFAULT_VPN_RUNAS : undefined),
      },
    },
    redisUrl: e.REDIS_URL,
    auth: {
      tokenTtlMs: e.TOKEN_TTL,
      sessionCacheTtlMs: e.SESSION_CACHE_TTL,
      argon2: { memoryCost: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_TIME_COST, parallelism: e.ARGON2_PARALLELISM },
      hashQueue: { concurrency: e.ARGON2_CONCURRENCY, maxWaiting: e.ARGON2_MAX_WAITING ?? 32 * e.ARGON2_CONCURRENCY },
      loginRateLimit: { perAccount: e.LOGIN_MAX_ATTEMPTS_PER_ACCOUNT, perAddress: e.LOGIN_MAX_ATTEMPTS_PER_ADDRESS, windowMs: e.LOGIN_RATE_WINDOW },
      signUpRateLimit: { perAddress: e.SIGNUP_MAX_PER_ADDRESS, windowMs: e.SIGNUP_RATE_WINDOW },
      accounts: {
        requireVerifiedEmail: e.REQUIRE_VERIFIED_EMAIL,
        verificationTtlMs: e.EMAIL_VERIFICATION_TTL,
        resetTtlMs: e.PASSWORD_RESET_TTL,
        mailRateLimit: { perAccount: e.ACCOUNT_MAIL_MAX_PER_ACCOUNT, perAddress: e.PASSWORD_RESET_MAX_PER_ADDRESS, windowMs: e.ACCOUNT_MAIL_RATE_WINDOW },
        tokenRateLimit: { perAddress: e.ACCOUNT_TOKEN_MAX_PER_ADDRESS, windowMs: 15 * 60_000 },
      },
    },
    limits: {
      maxDepth: e.MAX_QUERY_DEPTH,
      maxCost: e.MAX_QUERY_COST,
      maxPageSize: e.MAX_PAGE_SIZE,
      defaultPageSize: e.DEFAULT_PAGE_SIZE,
      maxTokens: e.MAX_QUERY_TOKENS,
      maxAliases: e.MAX_QUERY_ALIASES,
      maxMutations: e.MAX_MUTATIONS,
      expensiveFieldCost: e.EXPENSIVE_FIELD_COST,
    },
    introspection: e.INTROSPECTION,
    expensiveFieldRate: { limit: e.EXPENSIVE_FIELD_RATE, windowMs: e.EXPENSIVE_FIELD_WINDOW },
    ws: {
      initTimeoutMs: e.WS_INIT_TIMEOUT,
      documentCacheBytes: e.WS_DOCUMENT_CACHE_BYTES,
      maxSubscriptionsPerConnection: e.WS_MAX_SUBSCRIPTIONS_PER_CONNECTION,
      maxSubscriptionsPerUser: e.WS_MAX_SUBSCRIPTIONS_PER_USER,
    },
    secrets,
    accessKeys: { perMachine: e.ACCESS_KEY_LIMIT, ttlMs: e.ACCESS_KEY_TTL },
    mail: { smtpUrl: e.SMTP_URL, from: e.MAIL_FROM, timeoutMs: e.SMTP_TIMEOUT, linkBase: (e.PUBLIC_URL ?? `http://${e.HOST.includes(":") ? `[${e.HOST}]` : e.HOST}:${e.PORT}`).replace(/\/+$/, "") },
    webhooks: {
      allowPrivateAddresses: e.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
      timeoutMs: e.WEBHOOK_TIMEOUT,
      perUser: e.WEBHOOK_LIMIT,
      retry: { initialIntervalMs: Math.max(1, e.WEBHOOK_RETRY_INITIAL), maximumIntervalMs: Math.max(1, e.WEBHOOK_RETRY_MAX_INTERVAL), totalMs: Math.max(1000, e.WEBHOOK_RETRY_FOR) },
    },
    runWorker: e.RUN_WORKER,
    runSchedules: e.RUN_SCHEDULES,
    workflowBundlePath: e.TEMPORAL_WORKFLOW_BUNDLE,
  };
}

/** Where the secrets key lives when neither SECRETS_KEY nor SECRETS_KEY_FILE is set. */
export const defaultSecretsKeyFile = (dataDir: string) => path.join(dataDir, "secrets.key");

/**
 * SECRETS_KEY, else the file SECRETS_KEY_FILE names, else <dataDir>/secrets.key — created (0600)
 * when missing in development and test, required in production. Problems go into `problems`.
 */
function secretsKeyOf(inline: string | undefined, file: string | undefined, dataDir: string, env: string, problems: string[]): Config["secrets"] | undefined {
  const decode = (text: string, where: string) => {
    const key = Buffer.from(text.trim(), "base64");
    if (key.length !== 32 || !/^[A-Za-z0-9+/=\s]+$/.test(text.trim())) {
      problems.push(`${where}: expected base64 of 32 random bytes (e.g. \`head -c 32 /dev/urandom | base64\`), got ${key.length} bytes`);
      return undefined;
    }
    return key;
  };
  let key: Buffer | undefined;
  let source: string;
  if (inline) {
    key = decode(inline, "SECRETS_KEY");
    source = "SECRETS_KEY";
  } else {
    const explicit = Boolean(file);
    const p = path.resolve(file ?? defaultSecretsKeyFile(dataDir));
    source = p;
    if (!explicit && env !== "production" && !fs.existsSync(p)) {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      try {
        fs.writeFileSync(p, randomBytes(32).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    let text: string | undefined;
    try {
      text = fs.readFileSync(p, "utf8");
    } catch (err) {
      problems.push(
        explicit
          ? `SECRETS_KEY_FILE: cannot read ${p} (${(err as NodeJS.ErrnoException).code ?? "error"})`
          : `SECRETS_KEY: not set, and ${p} does not exist; set SECRETS_KEY (base64 of 32 random bytes) or SECRETS_KEY_FILE (npm start creates ${p})`,
      );
    }
    if (text !== undefined) key = decode(text, explicit ? "SECRETS_KEY_FILE" : p);
  }
  if (!key) return undefined;
  const secrets = { source } as Config["secrets"];
  Object.defineProperty(secrets, "key", { value: key, enumerable: false });
  return secrets;
}

