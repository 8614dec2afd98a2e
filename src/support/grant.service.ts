import { and, count, desc, eq, gt, isNull } from "drizzle-orm";
import type { Db } from "../db/client";
import { supportGrants, users, type GrantScope, type SupportGrantRow } from "../db/schema";
import { findOwned, OwnedPages } from "../db/ownership";
import { badInput, conflict } from "../shared/errors";
import { newId } from "../shared/ids";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";
import type { AuditService } from "./audit.service";

/** How long a grant may last, in minutes (5 minutes to 7 days); 60 when not said. */
export const GRANT_MINUTES = { min: 5, max: 7 * 24 * 60, default: 60 } as const;
/** At most this many live grants per customer at once (revoke one to make another). */
export const MAX_LIVE_GRANTS = 5;
export const NOTE_MAX_LENGTH = 500;

export type GrantStatus = "LIVE" | "EXPIRED" | "REVOKED";

export function grantStatus(row: SupportGrantRow, now: Date): GrantStatus {
  if (row.revokedAt) return "REVOKED";
  return row.expiresAt.getTime() > now.getTime() ? "LIVE" : "EXPIRED";
}

/** Who asked, for the audit record (the API's request id and client address). */
export interface AuditMeta {
  ip?: string;
  requestId?: string;
}

/**
 * A customer's consent to support (issue 17): grant, list, revoke. Each grant and revoke is written
 * to the audit log. `liveGrantFor` is what support access checks before it reads anything.
 */
export class SupportGrantService {
  private readonly pages: OwnedPages<SupportGrantRow>;

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    limits: PageLimits,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.pages = new OwnedPages(db, supportGrants, limits);
  }

  async grant(user: { id: string; role: "CUSTOMER" | "SUPPORT" | "ADMIN" }, input: { minutes?: number | null; scope?: GrantScope | null; note?: string | null }, meta: AuditMeta = {}): Promise<SupportGrantRow> {
    const minutes = input.minutes ?? GRANT_MINUTES.default;
    if (!Number.isInteger(minutes) || minutes < GRANT_MINUTES.min || minutes > GRANT_MINUTES.max)
      throw badInput(`\`minutes\` must be a whole number from ${GRANT_MINUTES.min} to ${GRANT_MINUTES.max} (7 days)`, { field: "minutes", min: GRANT_MINUTES.min, max: GRANT_MINUTES.max });
    const note = (input.note ?? "").trim();
    if (note.length > NOTE_MAX_LENGTH) throw badInput(`\`note\` must be at most ${NOTE_MAX_LENGTH} characters`, { field: "note", maxLength: NOTE_MAX_LENGTH });
    const scope = input.scope ?? "READ";
    const now = this.now();
    const row: SupportGrantRow = { id: newId(), userId: user.id, scope, note, createdAt: now, expiresAt: new Date(now.getTime() + minutes * 60_000), revokedAt: null };
    await this.db.transaction(async (tx) => {
      // The account's row locked: two grants at once cannot both pass the limit.
      await tx.select({ id: users.id }).from(users).where(eq(users.id, user.id)).for("update");
      const [live] = await tx
        .select({ n: count() })
        .from(supportGrants)
        .where(and(eq(supportGrants.userId, user.id), isNull(supportGrants.revokedAt), gt(supportGrants.expiresAt, now)));
      if (Number(live?.n ?? 0) >= MAX_LIVE_GRANTS)
        throw conflict(`You already have ${MAX_LIVE_GRANTS} live support grants: revoke one first`, { reason: "TOO_MANY_LIVE_GRANTS", limit: MAX_LIVE_GRANTS });
      await tx.insert(supportGrants).values(row);
    });
    await this.audit.record({
      userId: user.id,
      actor: { id: user.id, role: user.role },
      action: "grant.create",
      target: `SupportGrant:${row.id}`,
      detail: { scope, minutes, expiresAt: row.expiresAt.toISOString(), ...(note ? { note } : {}) },
      ...meta,
    });
    return row;
  }

  /** The customer's grants, newest first. */
  list(userId: string, args: PageArgs): Promise<Page<SupportGrantRow>> {
    return this.pages.list(userId, args);
  }

  /** Revokes one of the customer's grants (NOT_FOUND for another's); revoking twice keeps the first time. */
  async revoke(user: { id: string; role: "CUSTOMER" | "SUPPORT" | "ADMIN" }, id: string, meta: AuditMeta = {}): Promise<SupportGrantRow> {
    const row = await findOwned<SupportGrantRow>(this.db, supportGrants, "SupportGrant", user.id, id);
    if (row.revokedAt) return row;
    const revokedAt = this.now();
    await this.db
      .update(supportGrants)
      .set({ revokedAt })
      .where(and(eq(supportGrants.id, row.id), isNull(supportGrants.revokedAt)));
    await this.audit.record({ userId: user.id, actor: { id: user.id, role: user.role }, action: "grant.revoke", target: `SupportGrant:${row.id}`, detail: { scope: row.scope }, ...meta });
    return { ...row, revokedAt };
  }

  /**
   * The customer's live grant (not revoked, not expired at `now`), the one expiring last; null when
   * there is none. Support access asks this before every read or action on the customer's account.
   */
  async liveGrantFor(customerUserId: string, now: Date = this.now()): Promise<SupportGrantRow | null> {
    const [row] = await this.db
      .select()
      .from(supportGrants)
      .where(and(eq(supportGrants.userId, customerUserId), isNull(supportGrants.revokedAt), gt(supportGrants.expiresAt, now)))
      .orderBy(desc(supportGrants.expiresAt))
      .limit(1);
    return row ?? null;
  }
}
