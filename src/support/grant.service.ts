import { and, desc, eq, gt, isNull } from "drizzle-orm";
import type { Db } from "../db/client";
import { supportGrants, type SupportGrantRow } from "../db/schema";

/**
 * Customers' consent to support (issue 17). Minimal version (the consent API — grant, list, revoke —
 * is built beside it): what support acting for a customer needs to know.
 */
export class SupportGrantService {
  constructor(private readonly db: Db) {}

  /** The customer's live grant (not revoked, not expired at `now`), the one lasting longest; null without one. */
  async liveGrantFor(customerUserId: string, now: Date): Promise<SupportGrantRow | null> {
    const [row] = await this.db
      .select()
      .from(supportGrants)
      .where(and(eq(supportGrants.userId, customerUserId), isNull(supportGrants.revokedAt), gt(supportGrants.expiresAt, now)))
      .orderBy(desc(supportGrants.expiresAt))
      .limit(1);
    return row ?? null;
  }
}
