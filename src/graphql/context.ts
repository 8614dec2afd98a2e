import type { Logger } from "../logger";
import type { Authenticated } from "../auth/auth.service";
import type { Services } from "../services";
import type { PageLimits } from "../shared/pagination";
import { unauthenticated } from "../shared/errors";
import type { UserRow } from "../db/schema";

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
}

/** The signed-in user, or UNAUTHENTICATED. */
export function currentUser(ctx: Context): UserRow {
  if (!ctx.auth) throw unauthenticated();
  return ctx.auth.user;
}
