import { Redis } from "ioredis";
import type { Config } from "./config";
import type { Logger } from "./logger";
import { createDatabase, type Database } from "./db/client";
import { ensureDatabaseExists, runMigrations } from "./db/migrate";
import { createEventBus } from "./events/adapters";
import type { EventBusHandle } from "./events/event-bus";
import { MemoryRateLimiter, RedisRateLimiter, type RateLimiter } from "./auth/rate-limiter";
import { createServices, type Services } from "./services";
import { checkBuckets, createS3Client, createStores, type S3Client, type Stores } from "./storage/s3";
import { objectImageSource } from "./storage/object-reader";
import { connectTemporal, type TemporalHandle } from "./temporal/client";
import { temporalWorkflows } from "./temporal/workflows";
import type { WorkflowPort } from "./temporal/workflow-port";
import { createTargets } from "./compute";
import type { ComputeTarget, TargetKind } from "./compute/target";

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
  close(): Promise<void>;
}

export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  if (config.database.migrateOnStart) {
    await ensureDatabaseExists(config.database.url);
  }
  const database = createDatabase(config.database.url, config.database.poolSize);
  const closers: (() => Promise<void>)[] = [() => database.close()];
  try {
    await database.ping().catch((err: unknown) => {
      throw new Error(`database not reachable at DATABASE_URL (${maskUrl(config.database.url)}): ${err instanceof Error ? err.message : err}`);
    });
    if (config.database.migrateOnStart) {
      await runMigrations(database);
      logger.info("database migrations applied");
    }
    const events = createEventBus(config.redisUrl, (err) => logger.warn({ err }, "redis pub/sub connection error"));
    closers.push(() => events.close());
    let limiter: RateLimiter = new MemoryRateLimiter();
    if (config.redisUrl) {
      const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
      redis.on("error", (err) => logger.warn({ err }, "redis rate-limiter connection error"));
      closers.push(async () => void redis.disconnect());
      limiter = new RedisRateLimiter(redis);
    }
    const s3 = createS3Client(config.s3);
    closers.push(async () => s3.destroy());
    const temporal = await connectTemporal(config.temporal).catch((err: unknown) => {
      throw new Error(`Temporal not reachable at TEMPORAL_ADDRESS=${config.temporal.address}: ${err instanceof Error ? err.message : err}`);
    });
    closers.push(() => temporal.close());
    const storage = createStores(s3, config.s3);
    const targets = createTargets(config, objectImageSource(s3), logger);
    const workflows = temporalWorkflows(temporal.client, config.temporal.taskQueue, logger);
    const services = createServices({ config, db: database.db, events: events.bus, limiter, storage, workflows, targets, logger });
    logger.info({ pubSub: events.transport }, "runtime ready");
    return {
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
      close: () => closeAll(closers),
    };
  } catch (err) {
    await closeAll(closers);
    throw err;
  }
}

export function readinessChecks(rt: Runtime) {
  return {
    database: () => rt.database.ping(),
    temporal: () => rt.temporal.ping(),
    s3: () => checkBuckets(rt.s3, rt.config.s3),
  };
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
