import "reflect-metadata";
import fs from "node:fs";
import { Session } from "node:inspector";
import { inArray } from "drizzle-orm";
import { loadConfig } from "../src/config";
import { createLogger } from "../src/logger";
import { createRuntime } from "../src/runtime";
import { startApp } from "../src/server/app";
import { backups, recoveries, recoveryEvents, sessions, users } from "../src/db/schema";
import { hashToken, newToken } from "../src/auth/token";
import { newId } from "../src/shared/ids";
import { LoadWindow, serve, exitAfter } from "./ipc";

/**
 * The API under test of bench/graphql.ts: the real API (createRuntime + startApp, exactly as
 * src/main.ts builds it, with the logger src/main.ts would make from LOG_LEVEL) on an ephemeral
 * port. It also seeds the bench's rows (a user, a session, backups, a recovery with its timeline)
 * straight into the database and removes them at the end.
 */

export interface GraphqlApiInfo {
  pid: number;
  graphqlUrl: string;
  transport: "memory" | "redis";
  logLevel: string;
}

export interface Seeded {
  userId: string;
  token: string;
  recoveryId: string;
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel);
  const rt = await createRuntime(config, logger);
  const app = await startApp({ config, logger, services: rt.services, events: rt.events.bus, limiter: rt.limiter, availability: rt.availability, stopGracePeriodMs: 500 });
  const db = rt.database.db;
  const load = new LoadWindow();
  const profiler = new Session();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => profiler.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));

  serve(
    {
      /** A user with `backups` COMPLETED backups (newest first alternating FULL/INCREMENTAL), a session and a recovery with `events` timeline entries. */
      async seed(args: { backups: number; events: number }): Promise<Seeded> {
        const now = Date.now();
        const userId = newId();
        const tag = userId.slice(-12);
        await db.insert(users).values({ id: userId, username: `bench-gql-${tag}`, email: `bench-gql-${tag}@example.com`, passwordHash: "not-a-password-hash", createdAt: new Date(now), updatedAt: new Date(now) });
        const token = newToken();
        await db.insert(sessions).values({
          id: newId(),
          userId,
          tokenHash: hashToken(token),
          createdAt: new Date(now),
          expiresAt: new Date(now + 24 * 3600_000),
          revokedAt: null,
          lastUsedAt: new Date(now),
          ip: "127.0.0.1",
          userAgent: "bench/graphql",
        });
        const rows = Array.from({ length: args.backups }, (_, i) => {
          const at = new Date(now - (args.backups - i) * 3600_000);
          return {
            id: newId(),
            userId,
            sourceName: i % 3 === 0 ? "fileserver" : "mail-01",
            kind: i % 7 === 0 ? ("FULL" as const) : ("INCREMENTAL" as const),
            status: "COMPLETED" as const,
            imageSize: (64 + i) * 1024 * 1024 * 1024,
            chunkSize: 8 * 1024 * 1024,
            chunkCount: Math.ceil(((64 + i) * 1024) / 8),
            uploadedBytes: 1024 * 1024 * (i + 1),
            parentId: null,
            sha256: null,
            manifestKey: null,
            createdAt: at,
            updatedAt: at,
            completedAt: at,
            deletedAt: null,
          };
        });
        for (const row of rows) await db.insert(backups).values(row); // one by one: ids (UUIDv7) grow
        const recovery = await rt.services.recoveries.create(userId, { backupId: rows.at(-1)!.id, target: "LOCAL" });
        const steps = ["PREPARING", "IMPORTING", "LAUNCHING", "CHECKING"] as const;
        for (let i = 0; i < args.events; i++) {
          const step = steps[Math.floor(i / 2) % steps.length]!;
          await db.insert(recoveryEvents).values({
            id: newId(),
            userId,
            recoveryId: recovery.id,
            step,
            status: i % 2 === 0 ? "STARTED" : "SUCCEEDED",
            message: `${step.toLowerCase()} ${i % 2 === 0 ? "started" : "done"} (bench event ${i + 1})`,
            attempt: 1,
            createdAt: new Date(now + i * 1000),
          });
        }
        return { userId, token, recoveryId: recovery.id };
      },

      async cleanup(args: { userIds: string[] }) {
        if (!args.userIds.length) return;
        await db.delete(recoveries).where(inArray(recoveries.userId, args.userIds));
        await db.delete(users).where(inArray(users.id, args.userIds)); // backups, sessions, events cascade
      },

      /** CPU profile of this process (a .cpuprofile) between profileStart and profileStop: the load only, not the start-up. */
      async profileStart() {
        profiler.connect();
        await post("Profiler.enable");
        await post("Profiler.start");
      },

      async profileStop(args: { file: string }) {
        const { profile } = (await post("Profiler.stop")) as { profile: unknown };
        fs.writeFileSync(args.file, JSON.stringify(profile));
        profiler.disconnect();
        return args.file;
      },

      windowStart() {
        load.start();
      },

      windowEnd() {
        return load.end();
      },

      stop() {
        exitAfter(async () => {
          await app.stop();
          await rt.close();
        });
      },
    },
    (): GraphqlApiInfo => ({ pid: process.pid, graphqlUrl: app.graphqlUrl, transport: rt.events.transport, logLevel: config.logLevel }),
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
