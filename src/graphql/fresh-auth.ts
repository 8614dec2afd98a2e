import type { Context } from "./context";
import { reauthRequired, unauthenticated } from "../shared/errors";

/**
 * Fresh authentication (issue 18): REAUTH_REQUIRED unless this request's session re-entered its
 * password (reauthenticate) within FRESH_AUTH_WINDOW. A stolen session token alone cannot delete.
 */
export async function requireFreshAuth(ctx: Context): Promise<void> {
  if (!ctx.auth) throw unauthenticated();
  const window = ctx.services.freshAuthWindowMs;
  const at = await ctx.services.auth.reauthenticatedAt(ctx.auth.session.id);
  if (!at || Date.now() - at.getTime() > window) throw reauthRequired(window / 1000);
}

/** Who asked, for the trash and the owner's e-mail: the signed-in user and the client address. */
export function requester(ctx: Context): string {
  const user = ctx.auth?.user;
  return `${user?.username ?? user?.email ?? "unknown"}${ctx.ip ? ` from ${ctx.ip}` : ""}`;
}
