import type { SessionPurgeActivities } from "../../workflows/contracts";
import type { AuthService } from "./auth.service";

/** The session purge workflow's activity. */
export function createSessionPurgeActivities(deps: { auth: Pick<AuthService, "purgeSessions"> }): SessionPurgeActivities {
  return {
    purgeSessions: (olderThanMs) => deps.auth.purgeSessions(olderThanMs),
  };
}
