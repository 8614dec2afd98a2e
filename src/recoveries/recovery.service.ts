import type { Db } from "../db/client";
import { recoveries, type RecoveryRow } from "../db/schema";
import { newId } from "../common/ids";
import { findOwned } from "../common/ownership";
import { paginateOwned, type Page, type PageArgs, type PageLimits } from "../common/pagination";
import type { BackupService } from "../backups/backup.service";
import { badInput } from "../errors";

export class RecoveryService {
  constructor(
    private readonly db: Db,
    private readonly backups: BackupService,
    private readonly limits: PageLimits,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get(userId: string, id: string): Promise<RecoveryRow> {
    return findOwned<RecoveryRow>(this.db, recoveries, "Recovery", userId, id);
  }

  list(userId: string, args: PageArgs): Promise<Page<RecoveryRow>> {
    return paginateOwned<RecoveryRow>(this.db, recoveries, userId, args, this.limits);
  }

  /** Records a PENDING recovery of one of the user's COMPLETED backups. */
  async create(userId: string, input: { backupId: string; target: RecoveryRow["target"] }): Promise<RecoveryRow> {
    const backup = await this.backups.get(userId, input.backupId);
    if (backup.status !== "COMPLETED") throw badInput(`Backup ${backup.id} is ${backup.status}; only a COMPLETED backup can be recovered`, { field: "backupId" });
    const now = this.now();
    const id = newId();
    const row: RecoveryRow = {
      id,
      userId,
      backupId: backup.id,
      target: input.target,
      state: "PENDING",
      stepProgress: 0,
      totalProgress: 0,
      message: null,
      failureReason: null,
      workflowId: `recovery-${id}`,
      startedAt: null,
      deadlineAt: null,
      completedAt: null,
      createdAt: now,
      updatedAt: now,
    };
    await this.db.insert(recoveries).values(row);
    return row;
  }
}
