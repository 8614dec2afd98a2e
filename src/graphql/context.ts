import type { Logger } from "../logger";
import type { Authenticated } from "../auth/auth.service";
import type { Services } from "../services";
import type { PageLimits } from "../shared/pagination";
import { unauthenticated } from "../shared/errors";
import type { SupportGrantRow, UserRow } from "../db/schema";
import type { AgentScope } from "../agent-keys/agent-key.service";

/** Per-request (HTTP) or per-operation (WebSocket) context. */
export interface Context {
  requestId: string;
  ip?: string;
  userAgent?: string;
  /** Present when a valid token came with the request. */
  auth?: Authenticated;
  services: Services;
  logger: Logger;
  limits: PageLimits;
  /**
   * Support acting for a customer (X-ReClo-Act-For, within the customer's live grant): the customer
   * whose data the request reads (currentUser returns it) and the grant; `auth.user` stays the
   * support user (the actor).
   */
  actingFor?: UserRow;
  grant?: SupportGrantRow;
  /**
   * The request came with an agent key (issue 18), not a session: `auth.user` is the key's owner and
   * src/graphql/agent-scope.ts lets it back up this one source and nothing else.
   */
  agent?: AgentScope;
}

/** Whose data the request reads: the signed-in user, or the customer support acts for; UNAUTHENTICATED without a session. */
export function currentUser(ctx: Context): UserRow {
  if (!ctx.auth) throw unauthenticated();
  return ctx.actingFor ?? ctx.auth.user;
}

/** The signed-in user themself (the actor), even while acting for a customer; UNAUTHENTICATED without a session. */
export function signedInUser(ctx: Context): UserRow {
  if (!ctx.auth) throw unauthenticated();
  return ctx.auth.user;
}
