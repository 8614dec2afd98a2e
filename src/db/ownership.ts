import { and, count, desc, eq, getTableColumns, gte, inArray, lt, ne, notInArray, sql } from "drizzle-orm";
import type { MySqlColumn, MySqlTable } from "drizzle-orm/mysql-core";
import type { Db, Prepared } from "./client";
import { prepareSelect } from "./fast-select";
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

/** The by-id lookup of each table, built once per database handle (a transaction is a handle of its own). */
const byIdStatements = new WeakMap<Db, Map<OwnedTable, Prepared>>();

export async function findOwnedOrNull<T>(db: Db, table: OwnedTable, userId: string, id: string): Promise<T | null> {
  if (!isId(id)) return null;
  let statements = byIdStatements.get(db);
  if (!statements) byIdStatements.set(db, (statements = new Map()));
  let byId = statements.get(table);
  if (!byId) {
    byId = prepareSelect(
      db,
      db
        .select()
        .from(table)
        .where(and(eq(table.id, sql.placeholder("id")), eq(table.userId, sql.placeholder("userId"))))
        .limit(1),
    );
    statements.set(table, byId);
  }
  const [row] = (await byId.execute({ id, userId })) as T[];
  return row ?? null;
}

/**
 * One condition of an owned list's filter. For eq/ne/gte/lt the value is bound at execution and the
 * SQL is built once per shape; for in/notIn the set is part of the shape (fixed sets from the code,
 * such as the active states, never a caller's list: each set is a statement of its own).
 */
export type OwnedFilter = { column: MySqlColumn; op: "eq" | "ne" | "gte" | "lt"; value: unknown } | { column: MySqlColumn; op: "in" | "notIn"; value: readonly unknown[] };

const BOUND = { eq, ne, gte, lt } as const;

/**
 * Newest-first keyset pagination over one user's rows (every list of the API). The owner filter is
 * always applied here; filters narrow further. The statements are built once per shape (which
 * filters, whether there is a cursor) as drizzle prepared queries with placeholders: building them
 * was about a third of the CPU a backups page cost the API.
 *
 * The page's rows carry the total count as an uncorrelated subquery (MariaDB runs it once per
 * statement), so a page is one round trip and one consistent read instead of two statements (the
 * second one's socket write, packets and parsing were part of what the API spent beyond a raw
 * server). Only an empty page after a cursor runs the count alone (without a cursor, an empty page
 * means there are none).
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
    const key = `${filters.map((f) => `${f.column.name} ${f.op}${f.op === "in" || f.op === "notIn" ? ` ${JSON.stringify(f.value)}` : ""}`).join(",")}${afterId ? "|after" : ""}`;
    let shape = this.shapes.get(key);
    if (!shape) {
      const { table } = this;
      const scope = and(
        eq(table.userId, sql.placeholder("userId")),
        ...filters.map((f, i) => (f.op === "in" ? inArray(f.column, [...f.value]) : f.op === "notIn" ? notInArray(f.column, [...f.value]) : BOUND[f.op](f.column, sql.placeholder(`f${i}`)))),
      );
      const total = this.db.select({ total: count() }).from(table).where(scope);
      shape = {
        rows: prepareSelect(
          this.db,
          this.db
            .select({ row: getTableColumns(table), total: sql<number>`(${total})` })
            .from(table)
            .where(afterId ? and(scope, lt(table.id, sql.placeholder("after"))) : scope)
            .orderBy(desc(table.id))
            .limit(sql.placeholder("limit")),
        ),
        total: total.prepare() as unknown as Prepared,
      };
      this.shapes.set(key, shape);
    }
    const values: Record<string, unknown> = { userId, limit: first + 1, after: afterId };
    // What drizzle would bind for a literal value (a placeholder skips the column's encoder: a Date becomes its DATETIME text).
    filters.forEach((f, i) => {
      if (f.op !== "in" && f.op !== "notIn") values[`f${i}`] = f.column.mapToDriverValue(f.value);
    });
    const rows = (await shape.rows.execute(values)) as { row: T & { id: string }; total: number | string }[];
    const edges = rows.slice(0, first).map(({ row }) => ({ cursor: encodeCursor(row.id), node: row }));
    let totalCount = rows.length > 0 ? Number(rows[0]!.total) : 0;
    if (rows.length === 0 && afterId) {
      // Past the end: no row carried the count, but rows before the cursor may exist.
      const [counted] = (await shape.total.execute(values)) as { total: number | string }[];
      totalCount = Number(counted?.total ?? 0);
    }
    return {
      edges,
      pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null, startCursor: edges[0]?.cursor ?? null },
      totalCount,
    };
  }
}
