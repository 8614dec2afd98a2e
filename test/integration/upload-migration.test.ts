import { afterAll, describe, expect, it, inject } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import mysql from "mysql2/promise";
import { drizzle } from "drizzle-orm/mysql2";
import { migrate } from "drizzle-orm/mysql2/migrator";
import { migrationsFolder } from "../../src/db/migrate";

/**
 * ABORTED uploads became ABANDONED (issue 16): a database with uploads recorded before that keeps
 * them, renamed, with a reason. Found by content, not by file name, so the check still holds when
 * the migrations are combined at merge: the migrations before the one that introduces ABANDONED are
 * applied, an ABORTED upload is written, then the rest.
 */
describe("migration: ABORTED uploads become ABANDONED", () => {
  const serverUrl = inject("databaseUrl").replace(/\/[^/]+$/, "");
  const name = `${inject("databaseUrl").replace(/^.*\//, "")}_migration`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-migration-"));
  let conn: mysql.Connection | undefined;

  afterAll(async () => {
    await conn?.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await conn?.end();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("keeps the rows, renamed, with a reason", async () => {
    const admin = await mysql.createConnection(serverUrl);
    await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await admin.end();
    conn = await mysql.createConnection(`${serverUrl}/${name}`);

    const src = migrationsFolder();
    const journal = JSON.parse(fs.readFileSync(path.join(src, "meta", "_journal.json"), "utf8")) as { entries: { idx: number; tag: string }[] };
    const renaming = journal.entries.findIndex((e) => /`status` enum\([^)]*'ABANDONED'/.test(fs.readFileSync(path.join(src, `${e.tag}.sql`), "utf8")));
    expect(renaming, "a migration introduces ABANDONED").toBeGreaterThan(0);
    // The migrations before it, alone.
    fs.cpSync(src, tmp, { recursive: true });
    fs.writeFileSync(path.join(tmp, "meta", "_journal.json"), JSON.stringify({ ...journal, entries: journal.entries.slice(0, renaming) }));
    await migrate(drizzle(conn), { migrationsFolder: tmp });

    const [cols] = await conn.query("SHOW COLUMNS FROM uploads LIKE 'status'");
    expect((cols as { Type: string }[])[0]!.Type).toContain("'ABORTED'");
    await conn.query("SET FOREIGN_KEY_CHECKS = 0");
    const at = "2026-01-02 03:04:05.000";
    await conn.query(
      "INSERT INTO uploads (id, user_id, backup_id, status, bytes_sent, chunks_sent, started_at, created_at, updated_at) VALUES (?, ?, ?, 'ABORTED', 5, 1, ?, ?, ?), (?, ?, ?, 'COMPLETED', 9, 2, ?, ?, ?)",
      ["u-aborted", "user-1", "b-1", at, at, at, "u-completed", "user-1", "b-2", at, at, at],
    );

    await migrate(drizzle(conn), { migrationsFolder: src });
    const [rows] = await conn.query("SELECT id, status, failure_reason, bytes_sent FROM uploads ORDER BY id");
    expect(rows).toEqual([
      { id: "u-aborted", status: "ABANDONED", failure_reason: expect.stringMatching(/before it finished/), bytes_sent: 5 },
      { id: "u-completed", status: "COMPLETED", failure_reason: null, bytes_sent: 9 },
    ]);
    const [after] = await conn.query("SHOW COLUMNS FROM uploads LIKE 'status'");
    expect((after as { Type: string }[])[0]!.Type).toBe("enum('ACTIVE','COMPLETED','FAILED','ABANDONED')");
  }, 60_000);
});
