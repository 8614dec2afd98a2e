import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { uploads, type UploadRow } from "../db/schema";
import { OwnedPages, findOwned } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";

export class UploadService {
  private readonly pages: OwnedPages<UploadRow>;

  constructor(
    private readonly db: Db,
    limits: PageLimits,
  ) {
    this.pages = new OwnedPages<UploadRow>(db, uploads, limits);
  }

  get(userId: string, id: string): Promise<UploadRow> {
    return findOwned<UploadRow>(this.db, uploads, "Upload", userId, id);
  }

  list(userId: string, args: PageArgs): Promise<Page<UploadRow>> {
    return this.pages.list(userId, args);
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
