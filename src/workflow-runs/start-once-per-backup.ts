import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { backups } from "../db/schema";
import type { StartOutcome } from "../temporal/workflow-port";
import { isUnavailable } from "../shared/errors";

// One active run per backup, shared by recoveries and verifications (and so drills, which verify):
// claimOncePerBackup records the run under the backup's lock, startRecordedRun starts its workflow.

/** A transaction of the product's database. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
type TxConfig = Parameters<Db["transaction"]>[1];

/** One kind of run on a backup (a recovery, a verification) and how to find or record it. */
export interface BackupRun<Row> {
  backupId: string;
  /** Under the backup's row lock: the run already active for the backup, which is returned instead of a new one. */
  findActive(tx: Tx): Promise<Row | undefined>;
  /** Under the same lock: checks what must hold (e.g. quotas) and records the new run. */
  create(tx: Tx): Promise<Row>;
  /** Transaction options (e.g. READ COMMITTED for quota checks). */
  transaction?: TxConfig;
}

/**
 * Lock → find-or-insert: the backup's row is locked, so concurrent requests for the same backup
 * record one run; the others get that run (created: false). Start the workflow of a run this call
 * created with `startRecordedRun`.
 */
export async function claimOncePerBackup<Row>(db: Db, run: BackupRun<Row>): Promise<{ row: Row; created: boolean }> {
  return db.transaction(async (tx) => {
    await tx.select({ id: backups.id }).from(backups).where(eq(backups.id, run.backupId)).for("update");
    const active = await run.findActive(tx);
    if (active) return { row: active, created: false };
    return { row: await run.create(tx), created: true };
  }, run.transaction);
}

/** What to do with a recorded run whose workflow did not start. */
export interface StartFailureHandlers {
  /** The workflow engine is unavailable (nothing started): remove the run, so the customer sees no trace of the refused call. */
  refused(err: unknown): Promise<unknown>;
  /** Any other failure: record it on the run. */
  failed(err: unknown): Promise<unknown>;
}

/**
 * Starts a recorded run's workflow. A workflow id that is already started is the same run (a
 * retried request), not an error (the port answers ALREADY_STARTED). When the workflow engine is
 * unavailable (UNAVAILABLE) the run is removed by `refused` and the UNAVAILABLE answer rethrown:
 * the same call can simply be made again. Any other failure is recorded on the run by `failed` and
 * rethrown, so no run is left waiting for a workflow that never started.
 */
export async function startRecordedRun(start: () => Promise<StartOutcome>, on: StartFailureHandlers): Promise<StartOutcome> {
  try {
    return await start();
  } catch (err) {
    await (isUnavailable(err) ? on.refused(err) : on.failed(err));
    throw err;
  }
}
