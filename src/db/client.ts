import { drizzle, type MySql2Database } from "drizzle-orm/mysql2";
import mysql from "mysql2/promise";
import * as schema from "./schema";
import type { Availability } from "../shared/availability";

export type Db = MySql2Database<typeof schema>;

/** A drizzle prepared query (built once, placeholders bound at each execution), by what callers use of it. */
export type Prepared = { execute(values: Record<string, unknown>): Promise<unknown> };

export interface Database {
  db: Db;
  pool: mysql.Pool;
  close(): Promise<void>;
  ping(): Promise<void>;
}

/**
 * The pool of the product's database. With `availability`, every query first checks the database's
 * breaker (UNAVAILABLE at once while it is known down) and a query that fails to connect becomes
 * UNAVAILABLE (DATABASE) and opens the breaker; `ping` (the readiness check) bypasses both.
 */
export function createDatabase(url: string, poolSize = 10, availability?: Availability): Database {
  const u = new URL(url);
  const pool = mysql.createPool({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || "root"),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, "")),
    connectionLimit: poolSize,
    timezone: "Z",
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    charset: "utf8mb4_unicode_ci",
    enableKeepAlive: true,
    // A database that does not answer fails the connect, instead of holding the request.
    connectTimeout: 2000,
    // No stack captured at every query for the caller's frames in a failed query's error
    // (Error.captureStackTrace per query: 374 ms of a 16.9 s profile of the API under load,
    // bench/graphql). drizzle wraps every failure in a DrizzleQueryError made in the caller's
    // async chain, whose stack names the caller, and the database's error is its cause.
    trace: false,
  });
  const rawGetConnection = pool.getConnection.bind(pool);
  if (availability) guardPool(pool, availability);
  const db = drizzle(pool, { schema, mode: "default" });
  let closed = false;
  return {
    db,
    pool,
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
    async ping() {
      const conn = await rawGetConnection();
      try {
        await conn.ping();
      } finally {
        conn.release();
      }
    },
  };
}

/** Database name of a DATABASE_URL. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ""));
}

type Fn = (...args: unknown[]) => Promise<unknown>;

/** Wraps the pool's entry points (and the connections it hands out) in the database's breaker. */
function guardPool(pool: mysql.Pool, availability: Availability): void {
  const target = pool as unknown as Record<string, Fn>;
  const mapFailures = (obj: Record<string, Fn>, name: string) => {
    const original = obj[name]!.bind(obj);
    obj[name] = (...args) => original(...args).catch((err: unknown) => Promise.reject(availability.failed("DATABASE", err)));
  };
  for (const name of ["query", "execute"]) {
    const original = target[name]!.bind(pool);
    target[name] = (...args) => availability.guard("DATABASE", () => original(...args));
  }
  const getConnection = target.getConnection!.bind(pool);
  target.getConnection = () =>
    availability.guard("DATABASE", async () => {
      const conn = (await getConnection()) as Record<string, Fn>;
      mapFailures(conn, "query");
      mapFailures(conn, "execute");
      return conn;
    });
}
