import { and, count, desc, eq, lt, type SQL } from "drizzle-orm";
import type { MySqlColumn, MySqlTable } from "drizzle-orm/mysql-core";
import type { Db } from "../db/client";
import { badInput } from "../shared/errors";
import { isId } from "./ids";

export interface PageArgs {
  first?: number | null;
  after?: string | null;
}

export interface Page<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null; startCursor: string | null };
  totalCount: number;
}

export interface PageLimits {
  maxPageSize: number;
  defaultPageSize: number;
}

export const encodeCursor = (id: string): string => Buffer.from(`c:${id}`, "utf8").toString("base64url");

export function decodeCursor(cursor: string): string {
  const raw = Buffer.from(cursor, "base64url").toString("utf8");
  const id = raw.startsWith("c:") ? raw.slice(2) : "";
  if (!isId(id)) throw badInput("Invalid cursor: pass an `endCursor` from a previous page", { field: "after" });
  return id;
}

export function pageSize(args: PageArgs, limits: PageLimits): number {
  const first = args.first ?? limits.defaultPageSize;
  if (!Number.isInteger(first) || first < 0 || first > limits.maxPageSize)
    throw badInput(`\`first\` must be between 0 and ${limits.maxPageSize}`, { field: "first", maxPageSize: limits.maxPageSize });
  return first;
}

/** A table whose rows belong to a user and whose UUIDv7 id orders them by creation time. */
export type OwnedTable = MySqlTable & { id: MySqlColumn; userId: MySqlColumn };

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
