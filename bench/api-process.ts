import "reflect-metadata";
import fs from "node:fs";
import { Session } from "node:inspector";
import v8 from "node:v8";
import { eq, inArray } from "drizzle-orm";
import { loadConfig } from "../src/config";
import { createLogger } from "../src/logger";
import { createRuntime, type Runtime } from "../src/runtime";
import { startApp, type RunningApp } from "../src/server/app";
import { createDatabase, type Database } from "../src/db/client";
import { backups, recoveries, users } from "../src/db/schema";
import { createEventBus } from "../src/events/adapters";
import type { EventBusHandle } from "../src/events/event-bus";
import { Topic, type RecoverySnapshot } from "../src/events/topics";
import { RecoveryProgress, snapshotOf } from "../src/recoveries/recovery-progress";
import { BackupKind } from "../src/backups/backup.type";
import { LoadWindow, epochMs, exitWithParent, memoryAfterGc, p50p99max, serve, sleep, exitAfter } from "./ipc";

/**
 * A bench child process. Role "api" (default): the real API (createRuntime + startApp, exactly as
 * src/main.ts builds it) on an ephemeral port, which can also seed data and publish events from
 * inside the API process. Role "publisher": only the event bus (Redis) and the database, publishing
 * events from outside the API process. Driven by bench/subscriptions.ts over IPC.
 */

export type Via = "pubsub" | "progress";

export interface SeedArgs {
  userIds: string[];
  recoveries: number;
  /** Move every recovery to IMPORTING (needed to publish through RecoveryProgress.progress). */
  enterStep: boolean;
}

export interface PublishArgs {
  /** Current snapshots of the recoveries to publish for (one event per recovery per round). */
  targets: RecoverySnapshot[];
  rounds: number;
  intervalMs: number;
  /** All of a round's events at once instead of spread evenly over the interval. */
  burst: boolean;
  via: Via;
}

export interface PublishResult {
  published: number;
  failed: number;
  firstError?: string;
  durationMs: number;
  /** The round number of the last event published (every subscriber must end with it). */
  lastRound: number;
  /**
   * Via progress: where the time goes before the API. `writeMs`: RecoveryProgress.progress() (the
   * UPDATE) from its call; `onRedisMs`: from the call until the event is seen on Redis (UPDATE +
   * throttle + SELECT + PUBLISH + Redis), timed by the bench's own process (`watchRedis`), so that
   * the publisher's event loop does only what a worker's does. p50/p99/max.
   */
  stages?: { writeMs: number[]; onRedisMs?: number[] };
  /** How late the publisher was against its own schedule (its event loop), worst case. */
  maxScheduleLagMs: number;
}

export interface ApiInfo {
  role: "api" | "publisher";
  pid: number;
  wsUrl?: string;
  graphqlUrl?: string;
  transport: "memory" | "redis";
}

const role = process.argv.includes("--role=publisher") ? "publisher" : "api";

/** Message format the clients parse: bench r=<round> t=<epoch ms>. */
export const benchMessage = (round: number, t: number) => `bench r=${round} t=${t.toFixed(3)}`;

async function main(): Promise<void> {
  exitWithParent();
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel);
  let rt: Runtime | undefined;
  let app: RunningApp | undefined;
  let database: Database;
  let events: EventBusHandle;
  let progress: RecoveryProgress;

  if (role === "api") {
    rt = await createRuntime(config, logger);
    app = await startApp({ config, logger, services: rt.services, events: rt.events.bus, limiter: rt.limiter, availability: rt.availability, stopGracePeriodMs: 500 });
    database = rt.database;
    events = rt.events;
    progress = rt.services.recoveryProgress;
  } else {
    database = createDatabase(config.database.url, config.database.poolSize);
    events = createEventBus(config.redisUrl, (err) => logger.warn({ err }, "redis pub/sub connection error"));
    progress = new RecoveryProgress(database.db, events.bus);
  }

  const load = new LoadWindow();
  let profiler: Session | undefined;
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => profiler!.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));
  // One round counter per process: versions and round numbers only ever increase.
  let globalRound = 0;

  serve(
    {
      async seed(args: SeedArgs): Promise<RecoverySnapshot[]> {
        if (!rt) throw new Error("seed needs the api role");
        const s = rt.services;
        const backupIds: string[] = [];
        for (const userId of args.userIds) {
          const b = await s.backups.create(userId, { sourceName: "bench-fileserver", imageSize: 100 * 1024 * 1024, kind: BackupKind.FULL });
          await database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, b.id));
          backupIds.push(b.id);
        }
        const out: RecoverySnapshot[] = new Array(args.recoveries);
        let next = 0;
        const worker = async () => {
          for (let j = next++; j < args.recoveries; j = next++) {
            const u = j % args.userIds.length;
            const row = await s.recoveries.create(args.userIds[u]!, { backupId: backupIds[u]!, target: "LOCAL" });
            if (args.enterStep) {
              await s.recoveryProgress.enter(row.id, "IMPORTING", "bench: importing");
              out[j] = snapshotOf((await database.db.select().from(recoveries).where(eq(recoveries.id, row.id)))[0]!);
            } else {
              out[j] = snapshotOf(row);
            }
          }
        };
        await Promise.all(Array.from({ length: 16 }, worker));
        return out;
      },

      async publish(args: PublishArgs): Promise<PublishResult> {
        const n = args.targets.length;
        const total = n * args.rounds;
        const firstRound = globalRound + 1;
        globalRound += args.rounds;
        let published = 0;
        let failed = 0;
        let firstError: string | undefined;
        let maxLag = 0;
        const pending: Promise<void>[] = [];
        const writeMs: number[] = [];
        const start = performance.now() + 20;
        const dueOf = (i: number) => start + Math.floor(i / n) * args.intervalMs + (args.burst ? 0 : ((i % n) * args.intervalMs) / n);
        let i = 0;
        while (i < total) {
          const wait = dueOf(i) - performance.now();
          if (wait > 0) await sleep(wait);
          const now = performance.now();
          while (i < total && dueOf(i) <= now) {
            maxLag = Math.max(maxLag, now - dueOf(i));
            const round = firstRound + Math.floor(i / n);
            const base = args.targets[i % n]!;
            if (args.via === "pubsub") {
              // Straight onto the event bus: no database write, no throttle (the event carries a
              // version above what each subscriber read at subscribe time, so none is dropped).
              events.bus.publish(Topic.RECOVERY_CHANGED, base.id, {
                ...base,
                stepProgress: Math.min(100, round),
                version: base.version + round,
                message: benchMessage(round, epochMs()),
              });
              published++;
            } else {
              // Through the product path: the UPDATE, then publish (the row is read back only when another writer came between; rounds are spaced above the throttle).
              const t = epochMs();
              pending.push(
                progress.progress(base.id, "IMPORTING", Math.min(100, round), benchMessage(round, t)).then(
                  () => {
                    published++;
                    writeMs.push(epochMs() - t);
                  },
                  (err: unknown) => {
                    failed++;
                    firstError ??= err instanceof Error ? err.message : String(err);
                  },
                ),
              );
            }
            i++;
          }
        }
        await Promise.all(pending);
        return { stages: writeMs.length ? { writeMs: p50p99max(writeMs) } : undefined, published, failed, firstError, durationMs: performance.now() - start, lastRound: globalRound, maxScheduleLagMs: maxLag };
      },

      async mem(args?: { reduce?: boolean }) {
        const memory = await memoryAfterGc(args?.reduce ?? false);
        return { memory, sockets: app?.sockets.size ?? 0 };
      },

      windowStart() {
        load.start();
      },

      /** CPU profile of this process (Chrome DevTools .cpuprofile) between profileStart and profileStop. */
      async profileStart() {
        profiler ??= new Session();
        profiler.connect();
        await post("Profiler.enable");
        await post("Profiler.start");
      },

      /** Sampling heap profile of what survived young-generation GCs (what fills the old generation). */
      async heapSamplingStart() {
        profiler ??= new Session();
        profiler.connect();
        await post("HeapProfiler.enable");
        await post("HeapProfiler.startSampling", { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
      },

      async heapSamplingStop(args: { file: string }) {
        const { profile } = (await post("HeapProfiler.stopSampling")) as { profile: unknown };
        fs.writeFileSync(args.file, JSON.stringify(profile));
        profiler?.disconnect();
        return args.file;
      },

      async heapSnapshot(args: { file: string }) {
        await memoryAfterGc();
        return v8.writeHeapSnapshot(args.file);
      },

      async profileStop(args: { file: string }) {
        const { profile } = (await post("Profiler.stop")) as { profile: unknown };
        fs.writeFileSync(args.file, JSON.stringify(profile));
        profiler?.disconnect();
        return args.file;
      },

      windowEnd() {
        return load.end();
      },

      async cleanup(args: { userIds: string[] }) {
        if (!args.userIds.length) return;
        await database.db.delete(recoveries).where(inArray(recoveries.userId, args.userIds));
        await database.db.delete(users).where(inArray(users.id, args.userIds));
      },

      stop() {
        exitAfter(async () => {
          await app?.stop();
          if (rt) await rt.close();
          else {
            await events.close();
            await database.close();
          }
        });
      },
    },
    (): ApiInfo => ({ role, pid: process.pid, wsUrl: app?.wsUrl, graphqlUrl: app?.graphqlUrl, transport: events.transport }),
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
