import { and, desc, eq, getTableColumns, sql } from "drizzle-orm";
import { DrizzleQueryError } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backups, sessions } from "../../src/db/schema";
import { prepareSelect } from "../../src/db/fast-select";
import { OwnedPages } from "../../src/db/ownership";
import { backupImage, MiB } from "../helpers/backup";
import { signUp, startStack, uniqueName, type TestStack, type TestUser } from "../helpers/stack";

/**
 * The per-request selects (a page of a list, an object by id) map their rows with prepareSelect's
 * mapper instead of drizzle's: the values must be exactly drizzle's, for every kind of column
 * (DATETIME(3) with milliseconds, NULLs, JSON, DOUBLE, BIGINT, enums), nested selections and a
 * subquery, on the real database.
 */
let stack: TestStack;
let user: TestUser;
const ids: string[] = [];

beforeAll(async () => {
  stack = await startStack();
  user = await signUp(stack);
  const sourceName = uniqueName("fast");
  const image = Buffer.alloc(2 * MiB, 1);
  const full = (await backupImage(stack, user.id, image, { sourceName })).backup;
  const incr = (await backupImage(stack, user.id, Buffer.alloc(2 * MiB, 2), { sourceName, kind: "INCREMENTAL", parentBackupId: full.id, entropy: 4.25 })).backup;
  ids.push(full.id, incr.id);
  // Every column filled on one row, NULLs on the other.
  await stack.rt.database.db
    .update(backups)
    .set({
      suspect: { changedPercent: 87.5, usualPercent: null, entropy: 7.99, agentEntropy: 2, sampledChunks: 3, reason: "naïve ✓ test" } as never,
      suspectVerdict: "ENCRYPTED",
      suspectResolvedAt: new Date("2026-12-01T10:11:12.345Z"),
      deleteAfter: new Date("2027-01-02T03:04:05.006Z"),
      agentEntropy: 4.25,
    })
    .where(eq(backups.id, incr.id));
});

afterAll(async () => {
  await stack?.stop();
});

describe("prepareSelect: drizzle's values, mapped once per statement", () => {
  it("a row by id (every column, filled and NULL) equals drizzle's prepared query", async () => {
    const { db } = stack.rt.database;
    const query = () => db.select().from(backups).where(and(eq(backups.id, sql.placeholder("id")), eq(backups.userId, sql.placeholder("userId")))).limit(1);
    const fast = prepareSelect(db, query());
    const drizzle = query().prepare();
    for (const id of ids) {
      const ours = (await fast.execute({ id, userId: user.id })) as Record<string, unknown>[];
      expect(ours).toEqual(await drizzle.execute({ id, userId: user.id }));
      expect(ours).toHaveLength(1);
    }
    const [filled] = (await fast.execute({ id: ids[1], userId: user.id })) as (typeof backups.$inferSelect)[];
    expect(filled!.suspectResolvedAt).toEqual(new Date("2026-12-01T10:11:12.345Z"));
    expect(filled!.deleteAfter).toEqual(new Date("2027-01-02T03:04:05.006Z"));
    expect(filled!.suspect).toMatchObject({ changedPercent: 87.5, reason: "naïve ✓ test" });
    expect(filled!.agentEntropy).toBe(4.25);
    expect(filled!.suspectVerdict).toBe("ENCRYPTED");
    expect(typeof filled!.imageSize).toBe("number");
    const [empty] = (await fast.execute({ id: ids[0], userId: user.id })) as (typeof backups.$inferSelect)[];
    expect(empty!.suspect).toBeNull();
    expect(empty!.deleteAfter).toBeNull();
    // Another owner: no row.
    expect(await fast.execute({ id: ids[1], userId: "someone-else" })).toEqual([]);
  });

  it("a nested selection with a counting subquery equals drizzle's, in the same order", async () => {
    const { db } = stack.rt.database;
    const total = db.select({ n: sql<number>`count(*)` }).from(backups).where(eq(backups.userId, sql.placeholder("userId")));
    const query = () =>
      db
        .select({ row: getTableColumns(backups), total: sql<number>`(${total})`, when: { created: backups.createdAt } })
        .from(backups)
        .where(eq(backups.userId, sql.placeholder("userId")))
        .orderBy(desc(backups.id))
        .limit(sql.placeholder("limit"));
    const ours = (await prepareSelect(db, query()).execute({ userId: user.id, limit: 10 })) as { row: { id: string; createdAt: Date }; total: number; when: { created: Date } }[];
    expect(ours).toEqual(await query().prepare().execute({ userId: user.id, limit: 10 }));
    expect(ours.map((r) => r.row.id)).toEqual([...ids].reverse());
    expect(ours[0]!.when.created).toEqual(ours[0]!.row.createdAt);
    expect(Number(ours[0]!.total)).toBe(2);
  });

  it("a failing statement is a DrizzleQueryError with the database's error as its cause, as from drizzle", async () => {
    const { db } = stack.rt.database;
    const broken = db.select({ n: sql<number>`no_such_column` }).from(sessions).limit(1);
    const err = await prepareSelect(db, broken)
      .execute({})
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DrizzleQueryError);
    expect((err as DrizzleQueryError).cause).toMatchObject({ code: "ER_BAD_FIELD_ERROR" });
  });

  it("a transaction's handle gets drizzle's own prepared query (its connection, not the pool), with the same rows", async () => {
    const { db } = stack.rt.database;
    await db.transaction(async (tx) => {
      const pages = new OwnedPages<{ id: string }>(tx as never, backups, { defaultPageSize: 20, maxPageSize: 100 });
      const page = await pages.list(user.id, { first: 1 });
      expect(page.totalCount).toBe(2);
      expect(page.edges.map((e) => e.node.id)).toEqual([ids[1]]);
      expect(page.pageInfo.hasNextPage).toBe(true);
    });
  });
});
