import { inArray, type Column, type SQL } from "drizzle-orm";
import type { MaintenanceScope } from "../../workflows/contracts";

/**
 * A maintenance step's filter on a user column: none for everyone's (the scheduled run), or these
 * users' rows only (an operator's run for some accounts; an empty list matches no one).
 */
export function ofUsers(column: Column, scope: MaintenanceScope): SQL | undefined {
  return scope.userIds ? inArray(column, scope.userIds.length ? scope.userIds : [""]) : undefined;
}
