import { and, count, desc, eq, gte, lt, ne, sql, type SQL } from "drizzle-orm";
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

/** A drizzle prepared query, by what it is used for here. */
export type Prepared = { execute(values: Record<string, unknown>): Promise<unknown> };

/** A table whose rows belong to a user and whose UUIDv7 id orders them by creation time. */
export type OwnedTable = MySqlTable & { id: MySqlColumn; userId: MySqlColumn };

export async function findOwned<T>(db: Db, table: OwnedTable, kind: string, userId: string, id: string): Promise<T> {
  const row = await findOwnedOrNull<T>(db, table, userId, id);
  if (!row) throw notFound(kind, id);
  return row;
}

/** The by-id lookup of each table, built once per database handle (a transaction is a handle of its own). */
const byIdStatements = new WeakMap<Db, Map<OwnedTable, Prepared>>();

export async function findOwnedOrNull<T>(db: Db, table: OwnedTable, userId: string, id: string): Promise<T | null> {
  if (!isId(id)) return null;
  let statements = byIdStatements.get(db);
  if (!statements) byIdStatements.set(db, (statements = new Map()));
  let byId = statements.get(table);
  if (!byId) {
    byId = db
      .select()
      .from(table)
      .where(and(eq(table.id, sql.placeholder("id")), eq(table.userId, sql.placeholder("userId"))))
      .limit(1)
      .prepare() as unknown as Prepared;
    statements.set(table, byId);
  }
  const [row] = (await byId.execute({ id, userId })) as T[];
  return row ?? null;
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

/** One condition of an owned list's filter: the value is bound at execution, the SQL is built once per shape. */
export interface OwnedFilter {
  column: MySqlColumn;
  op: "eq" | "ne" | "gte" | "lt";
  value: unknown;
}

const OPS = { eq, ne, gte, lt } as const;

/**
 * `paginateOwned` for a list read on every request: the same rows, order, page and count, but the
 * two statements are built once per shape (which filters, whether there is a cursor) as drizzle
 * prepared queries with placeholders, and run side by side. Building them was about a third of
 * the CPU a backups page cost the API.
 */
export class OwnedPages<T> {
  private readonly shapes = new Map<string, { rows: Prepared; total: Prepared }>();

  constructor(
    private readonly db: Db,
    private readonly table: OwnedTable,
    private readonly limits: PageLimits,
  ) {}

  async list(userId: string, args: PageArgs, filters: OwnedFilter[] = []): Promise<Page<T>> {
    const first = pageSize(args, this.limits);
    const afterId = args.after ? decodeCursor(args.after) : undefined;
    const key = `${filters.map((f) => `${f.column.name} ${f.op}`).join(",")}${afterId ? "|after" : ""}`;
    let shape = this.shapes.get(key);
    if (!shape) {
      const { table } = this;
      const scope = and(eq(table.userId, sql.placeholder("userId")), ...filters.map((f, i) => OPS[f.op](f.column, sql.placeholder(`f${i}`))));
      shape = {
        rows: this.db
          .select()
          .from(table)
          .where(afterId ? and(scope, lt(table.id, sql.placeholder("after"))) : scope)
          .orderBy(desc(table.id))
          .limit(sql.placeholder("limit"))
          .prepare() as unknown as Prepared,
        total: this.db.select({ total: count() }).from(table).where(scope).prepare() as unknown as Prepared,
      };
      this.shapes.set(key, shape);
    }
    const values: Record<string, unknown> = { userId, limit: first + 1, after: afterId };
    // What drizzle would bind for a literal value (a placeholder skips the column's encoder: a Date becomes its DATETIME text).
    filters.forEach((f, i) => (values[`f${i}`] = f.column.mapToDriverValue(f.value)));
    const [rows, totals] = (await Promise.all([shape.rows.execute(values), shape.total.execute(values)])) as [(T & { id: string })[], { total: number }[]];
    const page = rows.slice(0, first);
    const edges = page.map((node) => ({ cursor: encodeCursor(node.id), node }));
    return {
      edges,
      pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null, startCursor: edges[0]?.cursor ?? null },
      totalCount: Number(totals[0]?.total ?? 0),
    };
  }
}
