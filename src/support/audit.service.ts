import { and, count, desc, eq, lt, type SQL } from "drizzle-orm";
import type { Db } from "../db/client";
import { auditEvents, users, type AuditEventRow, type UserRole } from "../db/schema";
import { newId } from "../shared/ids";
import { decodeCursor, encodeCursor, pageSize, type Page, type PageArgs, type PageLimits } from "../shared/pagination";

/** An audit event with who did it (username and role only: never an e-mail address). */
export interface AuditEventView extends AuditEventRow {
  actor: { id: string; username: string; role: UserRole } | null;
}

/** One thing that happened, as the audit log keeps it. */
export interface AuditRecord {
  /** Whose account it is about. */
  userId: string;
  actor?: { id: string; role: UserRole } | null;
  action: string;
  target?: string;
  detail?: Record<string, unknown>;
  ip?: string;
  requestId?: string;
}

/**
 * The audit log's one writer (issue 17). Append-only: this class inserts and never updates or
 * deletes. A write that fails throws: an action whose audit record cannot be kept must not look done.
 */
export class AuditService {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async record(r: AuditRecord): Promise<AuditEventRow> {
    const row: AuditEventRow = {
      id: newId(),
      userId: r.userId,
      actorId: r.actor?.id ?? null,
      actorRole: r.actor?.role ?? null,
      action: r.action.slice(0, 64),
      target: r.target?.slice(0, 255) ?? null,
      detail: r.detail ?? null,
      ip: r.ip?.slice(0, 64) ?? null,
      requestId: r.requestId?.slice(0, 64) ?? null,
      at: this.now(),
    };
    await this.db.insert(auditEvents).values(row);
    return row;
  }

  /**
   * The audit log, newest first: one account's events (`userId`), or every account's (null: for
   * admins only, which the caller checks). Read-only: there is no update or delete.
   */
  async list(userId: string | null, args: PageArgs, limits: PageLimits): Promise<Page<AuditEventView>> {
    const first = pageSize(args, limits);
    const afterId = args.after ? decodeCursor(args.after) : undefined;
    const scope: SQL | undefined = userId ? eq(auditEvents.userId, userId) : undefined;
    const where = afterId ? and(scope, lt(auditEvents.id, afterId)) : scope;
    const [rows, totals] = await Promise.all([
      this.db
        .select({ event: auditEvents, actorUsername: users.username, actorCurrentRole: users.role })
        .from(auditEvents)
        .leftJoin(users, eq(users.id, auditEvents.actorId))
        .where(where)
        .orderBy(desc(auditEvents.id))
        .limit(first + 1),
      this.db.select({ total: count() }).from(auditEvents).where(scope),
    ]);
    const page = rows.slice(0, first).map(({ event, actorUsername, actorCurrentRole }) => ({
      ...event,
      actor: event.actorId && actorUsername ? { id: event.actorId, username: actorUsername, role: event.actorRole ?? actorCurrentRole ?? "CUSTOMER" } : null,
    }));
    const edges = page.map((node) => ({ cursor: encodeCursor(node.id), node }));
    return {
      edges,
      pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null, startCursor: edges[0]?.cursor ?? null },
      totalCount: Number(totals[0]?.total ?? 0),
    };
  }
}
