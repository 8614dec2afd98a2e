import type { Db } from "../db/client";
import { sessions, type SessionRow } from "../db/schema";
import { paginateOwned } from "../db/ownership";
import type { Page, PageArgs, PageLimits } from "../shared/pagination";

/** Read model of a user's own sessions. */
export class SessionService {
  constructor(
    private readonly db: Db,
    private readonly limits: PageLimits,
  ) {}

  list(userId: string, args: PageArgs): Promise<Page<SessionRow>> {
    return paginateOwned<SessionRow>(this.db, sessions, userId, args, this.limits);
  }
}
