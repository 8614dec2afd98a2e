import type { Context } from "./context";
import { currentUser } from "./context";

/** Where a GraphQL request came from, for its audit record. */
export function requestMeta(ctx: Context): { ip?: string; requestId?: string } {
  return { ip: ctx.ip, requestId: ctx.requestId };
}

/**
 * Records what the signed-in user just did to their own account (a destructive action: delete a
 * backup, terminate a machine…), with the request's address and id. Call it after the action
 * succeeded; a failed write fails the request (an unrecorded action must not look done).
 */
export async function auditOwnAction(ctx: Context, action: string, target: string | undefined, detail?: Record<string, unknown>): Promise<void> {
  const user = currentUser(ctx);
  await ctx.services.audit.record({ userId: user.id, actor: { id: user.id, role: user.role }, action, target, detail, ...requestMeta(ctx) });
}
