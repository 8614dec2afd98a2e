import path from "node:path";
import fs from "node:fs";
import { migrate } from "drizzle-orm/mysql2/migrator";
import mysql from "mysql2/promise";
import type { Database } from "./client";

/** The committed drizzle/ folder, found from src/ (ts) or dist/src/ (compiled). */
export function migrationsFolder(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, "drizzle", "meta", "_journal.json"))) return path.join(dir, "drizzle");
    dir = path.dirname(dir);
  }
  throw new Error(`drizzle migrations folder not found above ${__dirname}`);
}

/** Applies the committed migrations (idempotent; drizzle records what ran in __drizzle_migrations). */
export async function runMigrations(database: Database): Promise<void> {
  await migrate(database.db, { migrationsFolder: migrationsFolder() });
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
