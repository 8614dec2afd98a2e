import { and, count, desc, eq, lt, type SQL } from "drizzle-orm";
import type { MySqlColumn, MySqlTable } from "drizzle-orm/mysql-core";
import type { Db } from "./client";
import { notFound } from "../shared/errors";
import { isId } from "../shared/ids";
import { decodeCursor, encodeCursor, pageSize, type Page, type PageArgs, type PageLimits } from "../shared/pagination";

/**
 * The ownership rule, in one place: an object is found only through its owner. Another user's
 * object, a deleted one and a malformed id all answer the same NOT_FOUND, so existence never leaks;
 * a list holds only the owner's rows.
 */

/** A table whose rows belong to a user and whose UUIDv7 id orders them by creation time. */
export type OwnedTable = MySqlTable & { id: MySqlColumn; userId: MySqlColumn };

export async function findOwned<T>(db: Db, table: OwnedTable, kind: string, userId: string, id: string): Promise<T> {
  const row = await findOwnedOrNull<T>(db, table, userId, id);
  if (!row) throw notFound(kind, id);
  return row;
}

export async function findOwnedOrNull<T>(db: Db, table: OwnedTable, userId: string, id: string): Promise<T | null> {
  if (!isId(id)) return null;
  const [row] = await db
    .select()
    .from(table)
    .where(and(eq(table.id, id), eq(table.userId, userId)))
    .limit(1);
  return (row as T | undefined) ?? null;
}

/**
 * Newest-first keyset pagination over one user's rows. The owner filter is always applied here;
 * `where` narrows further (filters).
 */
export async function paginateOwned<T>(db: Db, table: OwnedTable, userId: string, args: PageArgs, limits: PageLimits, where?: SQL): Promise<Page<T>> {
  const first = pageSize(args, limits);
  const scope = and(eq(table.userId, userId), where);
  const afterId = args.after ? decodeCursor(args.after) : undefined;
  const rows = (await db
    .select()
    .from(table)
    .where(afterId ? and(scope, lt(table.id, afterId)) : scope)
    .orderBy(desc(table.id))
    .limit(first + 1)) as (T & { id: string })[];
  const [{ total } = { total: 0 }] = await db.select({ total: count() }).from(table).where(scope);
  const page = rows.slice(0, first);
  const edges = page.map((node) => ({ cursor: encodeCursor(node.id), node }));
  return {
    edges,
    pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null, startCursor: edges[0]?.cursor ?? null },
    totalCount: Number(total),
  };
}
