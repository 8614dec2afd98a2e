import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { uploads, type UploadRow } from "../db/schema";
import { findOwned, paginateOwned } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";

export class UploadService {
  constructor(
    private readonly db: Db,
    private readonly limits: PageLimits,
  ) {}

  get(userId: string, id: string): Promise<UploadRow> {
    return findOwned<UploadRow>(this.db, uploads, "Upload", userId, id);
  }

  list(userId: string, args: PageArgs): Promise<Page<UploadRow>> {
    return paginateOwned<UploadRow>(this.db, uploads, userId, args, this.limits);
  }

  async forBackup(userId: string, backupId: string): Promise<UploadRow | null> {
    const [row] = await this.db
      .select()
      .from(uploads)
      .where(and(eq(uploads.backupId, backupId), eq(uploads.userId, userId)))
      .limit(1);
    return row ?? null;
  }
}
