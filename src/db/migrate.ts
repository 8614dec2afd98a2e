import path from "node:path";
import fs from "node:fs";
import { drizzle } from "drizzle-orm/mysql2";
import { migrate } from "drizzle-orm/mysql2/migrator";
import mysql from "mysql2/promise";
import type { Database } from "./client";
import { repoRoot } from "../shared/paths";

/** The committed drizzle/ folder. */
export function migrationsFolder(): string {
  const folder = path.join(repoRoot(), "drizzle");
  if (!fs.existsSync(path.join(folder, "meta", "_journal.json"))) throw new Error(`drizzle migrations not found at ${folder}`);
  return folder;
}

/**
 * Applies the committed migrations (idempotent; drizzle records what ran in __drizzle_migrations).
 * A named lock serialises processes that start together (API and worker): drizzle itself does not,
 * and two runners would both try to create the same tables.
 */
export async function runMigrations(database: Database, lockTimeoutSeconds = 120): Promise<void> {
  const conn = await database.pool.getConnection();
  try {
    // Named locks are server-wide: one per database.
    const [rows] = await conn.query("SELECT GET_LOCK(CONCAT('reclo_migrations.', DATABASE()), ?) AS got", [lockTimeoutSeconds]);
    if ((rows as { got: number | null }[])[0]?.got !== 1) throw new Error(`another process held the migration lock for ${lockTimeoutSeconds} s`);
    try {
      // On the locked connection itself: a pool of one would otherwise wait for itself.
      await migrate(drizzle(conn), { migrationsFolder: migrationsFolder() });
    } finally {
      await conn.query("SELECT RELEASE_LOCK(CONCAT('reclo_migrations.', DATABASE()))");
    }
  } finally {
    conn.release();
  }
}

/** Creates the database named in the URL if missing (for local development and tests). */
export async function ensureDatabaseExists(url: string): Promise<void> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`DATABASE_URL: unsupported database name "${name}"`);
  const conn = await mysql.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || "root"),
    password: decodeURIComponent(u.password),
  });
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await conn.end();
  }
}
