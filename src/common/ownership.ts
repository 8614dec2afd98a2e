import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { notFound } from "../shared/errors";
import { isId } from "./ids";
import type { OwnedTable } from "./pagination";

/**
 * The ownership rule, in one place: an object is found only through its owner. Another user's
 * object, a deleted one and a malformed id all answer the same NOT_FOUND, so existence never leaks.
 */
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
