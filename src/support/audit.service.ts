import type { Db } from "../db/client";
import { auditEvents, type AuditEventRow, type UserRole } from "../db/schema";
import { newId } from "../shared/ids";

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
}
