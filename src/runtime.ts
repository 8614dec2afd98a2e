import { Redis } from "ioredis";
import type { Config } from "./config";
import type { Logger } from "./logger";
import { createDatabase, type Database } from "./db/client";
import { ensureDatabaseExists, runMigrations } from "./db/migrate";
import { REDIS_OPTIONS, createEventBus } from "./events/adapters";
import type { EventBusHandle } from "./events/event-bus";
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from "./auth/rate-limiter";
import { createServices, type Services } from "./services";
import { checkBuckets, checkObjectLock, createS3Client, createStores, ObjectLockMissingError, type S3Client, type Stores } from "./storage/s3";
import { objectImageSource } from "./storage/object-reader";
import { connectTemporal, guardedWorkflows, type TemporalHandle } from "./temporal/client";
import { Availability, type AvailabilityCheck } from "./shared/availability";
import { connectionFailure, type Dependency } from "./shared/errors";
import { temporalWorkflows } from "./temporal/workflows";
import type { WorkflowPort } from "./temporal/workflow-port";
import { createTargets } from "./compute";
import type { ComputeTarget, TargetKind } from "./compute/target";
import { SmtpMailer, type Mailer } from "./mail/mailer";

/** Everything a process holds open, built once from the config and closed in reverse order. */
export interface Runtime {
  config: Config;
  logger: Logger;
  database: Database;
  events: EventBusHandle;
  limiter: RateLimiter;
  services: Services;
  /** The raw client: for the compute targets and the readiness check (features use `storage`). */
  s3: S3Client;
  /** The object stores every feature reaches S3 through. */
  storage: Stores;
  temporal: TemporalHandle;
  /** Starts, schedules and cancels the product's workflows by reference (the Temporal adapter of the workflow port). */
  workflows: WorkflowPort;
  targets: Partial<Record<TargetKind, ComputeTarget>>;
  /** Outgoing e-mail (SMTP_URL). */
  mailer: Mailer;
  /** The breakers of the dependencies, fed by readiness checks in the background (and /readyz's answer). */
  availability: Availability;
  close(): Promise<void>;
}

export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  if (config.database.migrateOnStart) {
    await ensureDatabaseExists(config.database.url);
  }
  const availability = new Availability({
    intervalMs: config.readiness.intervalMs,
    timeoutMs: config.readiness.timeoutMs,
    onChange: (name, state) =>
      state.ok ? logger.info({ check: name, ms: state.ms }, "dependency is back") : logger.warn({ check: name, error: state.error, ms: state.ms }, "dependency is down"),
  });
  const database = createDatabase(config.database.url, config.database.poolSize, availability);
  const closers: (() => Promise<void>)[] = [async () => availability.stop(), () => database.close()];
  try {
    await database.ping().catch((err: unknown) => {
      throw new Error(`database not reachable at DATABASE_URL (${maskUrl(config.database.url)}): ${err instanceof Error ? err.message : err}`);
    });
    if (config.database.migrateOnStart) {
      await runMigrations(database);
      logger.info("database migrations applied");
    }
    // Connection errors repeat on every reconnect attempt while Redis is down: the breaker logs the outage once.
    const events = createEventBus(config.redisUrl, (err) => (connectionFailure(err) ? logger.debug({ err }, "redis pub/sub connection error") : logger.warn({ err }, "redis pub/sub error")));
    closers.push(() => events.close());
    let limiter: RateLimiter = new MemoryRateLimiter();
    let redis: Redis | undefined;
    if (config.redisUrl) {
      const client = new Redis(config.redisUrl, REDIS_OPTIONS);
      redis = client;
      client.on("error", (err) => logger.debug({ err }, "redis rate-limiter connection error"));
      closers.push(async () => void client.disconnect());
      const inner = new RedisRateLimiter(client);
      limiter = {
        hit: (key, limit, windowMs) => availability.guard("REDIS", () => inner.hit(key, limit, windowMs)),
        reset: (key) => availability.guard("REDIS", () => inner.reset(key)),
      };
    }
    const s3 = createS3Client(config.s3, availability);
    closers.push(async () => s3.destroy());
    const temporal = await connectTemporal(config.temporal).catch((err: unknown) => {
      throw new Error(`Temporal not reachable at TEMPORAL_ADDRESS=${config.temporal.address}: ${err instanceof Error ? err.message : err}`);
    });
    closers.push(() => temporal.close());
    if (config.s3.objectLock) {
      // A backups bucket without Object Lock is a configuration error: refuse to start, naming the fix.
      // An object store that is merely down is the readiness check's business (see Outages).
      await checkObjectLock(s3, config.s3.buckets.backups).catch((err: unknown) => {
        if (err instanceof ObjectLockMissingError) throw err;
        logger.warn({ err }, "could not check the backups bucket's Object Lock at start (object store unreachable?)");
      });
    }
    const storage = createStores(s3, config.s3);
    const targets = createTargets(config, objectImageSource(s3), logger);
    const workflows = guardedWorkflows(temporalWorkflows(temporal.client, config.temporal.taskQueue, logger), temporal.connection, availability);
    const mailer = new SmtpMailer({ url: config.mail.smtpUrl, from: config.mail.from, timeoutMs: config.mail.timeoutMs });
    closers.push(() => mailer.close());
    const services = createServices({ config, db: database.db, events: events.bus, limiter, storage, workflows, targets, mailer, logger });
    // Closed first: account mails still being sent (verification, reset) get up to one SMTP timeout.
    closers.push(() => Promise.race([services.accounts.whenIdle(), new Promise<void>((resolve) => setTimeout(resolve, config.mail.timeoutMs).unref())]));
    const rt: Runtime = {
      config,
      logger,
      database,
      events,
      limiter,
      services,
      s3,
      storage,
      temporal,
      workflows,
      targets,
      mailer,
      availability,
      close: () => closeAll(closers),
    };
    for (const [name, check] of Object.entries(dependencyChecks(rt, redis))) void availability.add(name, check);
    await availability.start();
    logger.info({ pubSub: events.transport }, "runtime ready");
    return rt;
  } catch (err) {
    await closeAll(closers);
    throw err;
  }
}

/** The readiness check of each dependency (by its /readyz name), which also feeds its breaker. */
function dependencyChecks(rt: Runtime, redis: Redis | undefined): Record<string, AvailabilityCheck> {
  const checks: Record<string, AvailabilityCheck> = {
    database: { dependency: "DATABASE" satisfies Dependency, run: () => rt.database.ping() },
    temporal: { dependency: "TEMPORAL", run: () => rt.temporal.ping() },
    s3: { dependency: "OBJECT_STORE", run: () => checkBuckets(rt.s3, rt.config.s3) },
  };
  if (redis) checks.redis = { dependency: "REDIS", run: async () => void (await redis.ping()) };
  return checks;
}

async function closeAll(closers: (() => Promise<void>)[]): Promise<void> {
  for (const close of closers.reverse()) {
    try {
      await close();
    } catch {
      // closing is best effort
    }
  }
}

export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "****";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}
