import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import mysql from "mysql2/promise";
import { LoadWindow, serve } from "./ipc";

/**
 * The baseline of bench/graphql.ts: what the three benchmarked operations cost without GraphQL,
 * Express or an ORM. A plain `node:http` server with a `mysql2` pool (the same size and settings as
 * the product's) that, for every POST, reads the JSON body, authenticates the bearer token exactly
 * as the API does (SHA-256 of the token looked up in `sessions` joined to `users`, revoked / expired
 * refused, `last_used_at` touched when older than a minute), runs the same queries and answers the
 * same JSON the API answers for the same rows. It knows the three operations by their
 * operationName (Backups, Me, Recovery) and nothing else.
 */

export interface BaselineInfo {
  pid: number;
  url: string;
}

const url = new URL(process.env.DATABASE_URL ?? "mysql://root@127.0.0.1:3306/reclo_bench");
const pool = mysql.createPool({
  host: url.hostname,
  port: Number(url.port || 3306),
  user: decodeURIComponent(url.username || "root"),
  password: decodeURIComponent(url.password),
  database: decodeURIComponent(url.pathname.replace(/^\//, "")),
  connectionLimit: Number(process.env.DATABASE_POOL_SIZE ?? 10),
  timezone: "Z",
  supportBigNumbers: true,
  bigNumberStrings: false,
  charset: "utf8mb4_unicode_ci",
  enableKeepAlive: true,
});

type Row = Record<string, unknown>;
const TOKEN = /^rcl_[A-Za-z0-9_-]{43}$/;
const iso = (d: unknown) => (d instanceof Date ? d.toISOString() : null);
const cursor = (id: string) => Buffer.from(`c:${id}`, "utf8").toString("base64url");

class Unauthenticated extends Error {}

async function authenticate(header: string | undefined): Promise<{ user: Row; session: Row }> {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  const token = m?.[1];
  if (!token || !TOKEN.test(token)) throw new Unauthenticated("Malformed token");
  const hash = createHash("sha256").update(token, "utf8").digest("hex");
  const [rows] = await pool.query<mysql.RowDataPacket[]>({
    sql: "SELECT s.id, s.user_id, s.expires_at, s.revoked_at, s.last_used_at, u.id, u.username, u.email FROM sessions s INNER JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? LIMIT 1",
    values: [hash],
    nestTables: true,
  });
  const row = rows[0];
  if (!row) throw new Unauthenticated("Invalid token");
  const session = row.s as Row;
  const now = new Date();
  if (session.revoked_at) throw new Unauthenticated("Token revoked");
  if ((session.expires_at as Date).getTime() <= now.getTime()) throw new Unauthenticated("Token expired");
  const last = session.last_used_at as Date | null;
  if (!last || now.getTime() - last.getTime() > 60_000) await pool.query("UPDATE sessions SET last_used_at = ? WHERE id = ?", [now, session.id]);
  return { user: row.u as Row, session };
}

async function backupsPage(userId: string, first: number): Promise<unknown> {
  const [rows] = await pool.query<mysql.RowDataPacket[]>(
    "SELECT id, user_id, source_name, kind, status, image_size, chunk_size, chunk_count, uploaded_bytes, parent_id, sha256, manifest_key, created_at, updated_at, completed_at, deleted_at FROM backups WHERE user_id = ? AND status <> 'DELETED' ORDER BY id DESC LIMIT ?",
    [userId, first + 1],
  );
  const [[count]] = await pool.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS total FROM backups WHERE user_id = ? AND status <> 'DELETED'", [userId]);
  const page = rows.slice(0, first);
  const edges = page.map((r) => ({
    cursor: cursor(r.id),
    node: { id: r.id, kind: r.kind, status: r.status, sourceName: r.source_name, imageSize: r.image_size, createdAt: iso(r.created_at) },
  }));
  return { backups: { totalCount: Number(count!.total), pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null }, edges } };
}

async function recovery(userId: string, id: string): Promise<unknown> {
  const [[r]] = await pool.query<mysql.RowDataPacket[]>(
    "SELECT * FROM recoveries WHERE id = ? AND user_id = ? LIMIT 1",
    [id, userId],
  );
  if (!r) throw new Error("not found");
  const [events] = await pool.query<mysql.RowDataPacket[]>(
    "SELECT * FROM recovery_events WHERE recovery_id = ? AND user_id = ? ORDER BY id ASC",
    [r.id, userId],
  );
  return {
    recovery: { id: r.id, state: r.state, totalProgress: r.total_progress, events: events.map((e) => ({ step: e.step, status: e.status, message: e.message, createdAt: iso(e.created_at) })) },
  };
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    void (async () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { operationName?: string; variables?: Record<string, unknown> };
        const { user } = await authenticate(req.headers.authorization);
        const userId = user.id as string;
        const data =
          body.operationName === "Backups"
            ? await backupsPage(userId, Number(body.variables?.first ?? 20))
            : body.operationName === "Recovery"
              ? await recovery(userId, String(body.variables?.id))
              : body.operationName === "Me"
                ? { me: { id: user.id, username: user.username, email: user.email } }
                : undefined;
        if (data === undefined) throw new Error(`unknown operation ${body.operationName}`);
        const out = JSON.stringify({ data });
        res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(out) });
        res.end(out);
      } catch (err) {
        const out = JSON.stringify({ errors: [{ message: err instanceof Error ? err.message : String(err) }] });
        res.writeHead(err instanceof Unauthenticated ? 401 : 500, { "content-type": "application/json; charset=utf-8" });
        res.end(out);
      }
    })();
  });
});

const load = new LoadWindow();
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  serve(
    {
      windowStart() {
        load.start();
      },

      windowEnd() {
        return load.end();
      },

      stop() {
        setTimeout(() => process.exit(0), 2000).unref();
        setImmediate(() => void Promise.allSettled([new Promise((r) => server.close(r)), pool.end()]).finally(() => process.exit(0)));
      },
    },
    (): BaselineInfo => ({ pid: process.pid, url: `http://127.0.0.1:${port}/graphql` }),
  );
});
