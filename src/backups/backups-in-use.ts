import { and, inArray, isNotNull } from "drizzle-orm";
import type { Db } from "../db/client";
import { ACTIVE_RECOVERY_STATES, backups, recoveries, verifications } from "../db/schema";

/** Verification states that still read the restore point. */
export const ACTIVE_VERIFICATION_STATES = ["PENDING", "RUNNING"] as const;

/**
 * Restore points an active recovery or verification is reading, with every ancestor of their
 * chains. Neither the trash purge nor retention deletes one of these: it waits for the first run
 * after the recovery or verification ends, so a recovery never loses its restore point mid-way.
 */
export async function backupsInUse(db: Db): Promise<Set<string>> {
  const recovering = await db.selectDistinct({ id: recoveries.backupId }).from(recoveries).where(inArray(recoveries.state, [...ACTIVE_RECOVERY_STATES]));
  const verifying = await db.selectDistinct({ id: verifications.backupId }).from(verifications).where(inArray(verifications.status, [...ACTIVE_VERIFICATION_STATES]));
  const held = new Set([...recovering, ...verifying].map((r) => r.id));
  for (let frontier = [...held]; frontier.length; ) {
    const parents = await db
      .select({ parentId: backups.parentId })
      .from(backups)
      .where(and(inArray(backups.id, frontier), isNotNull(backups.parentId)));
    frontier = [...new Set(parents.map((p) => p.parentId!))].filter((id) => !held.has(id));
    for (const id of frontier) held.add(id);
  }
  return held;
}
