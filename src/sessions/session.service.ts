import type { Db } from "../db/client";
import { sessions, type SessionRow } from "../db/schema";
import { OwnedPages } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";

/** Read model of a user's own sessions. */
export class SessionService {
  private readonly pages: OwnedPages<SessionRow>;

  constructor(db: Db, limits: PageLimits) {
    this.pages = new OwnedPages<SessionRow>(db, sessions, limits);
  }

  list(userId: string, args: PageArgs): Promise<Page<SessionRow>> {
    return this.pages.list(userId, args);
  }
}
