import { Arg, Args, Authorized, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { PageArgsInput } from "../graphql/connection";
import type { SupportGrantRow } from "../db/schema";
import { forbidden } from "../shared/errors";
import type { AuditEventView } from "./audit.service";
import { grantStatus } from "./grant.service";
import { requestMeta } from "../graphql/audit";
import { AuditEvent, AuditEventConnection, SupportGrant, SupportGrantConnection } from "./support.type";
import { AuditLogArgs, GrantSupportAccessInput } from "./support.input";

const toGrant = (row: SupportGrantRow, now = new Date()): SupportGrant => ({ ...row, status: grantStatus(row, now) });
const toEvent = (row: AuditEventView): AuditEvent => ({ ...row, detail: row.detail == null ? null : JSON.stringify(row.detail) });

/** Consent (support grants) and the audit log (issue 17). */
@Resolver()
export class SupportGrantResolver {
  @Authorized()
  @Mutation(() => SupportGrant, {
    description:
      "Let ReClo support look at your account for `minutes` (default 60, 5 to 10080) with `scope` (default READ). At most 5 live grants at once (CONFLICT, reason TOO_MANY_LIVE_GRANTS). Recorded in your audit log.",
  })
  async grantSupportAccess(@Arg("input", () => GrantSupportAccessInput) input: GrantSupportAccessInput, @Ctx() ctx: Context): Promise<SupportGrant> {
    return toGrant(await ctx.services.grants.grant(currentUser(ctx), input, requestMeta(ctx)));
  }

  @Authorized()
  @Mutation(() => SupportGrant, { description: "End one of your support grants now (idempotent). Recorded in your audit log." })
  async revokeSupportAccess(@Arg("id", () => ID) id: string, @Ctx() ctx: Context): Promise<SupportGrant> {
    return toGrant(await ctx.services.grants.revoke(currentUser(ctx), id, requestMeta(ctx)));
  }

  @Authorized()
  @Query(() => SupportGrantConnection, { description: "Your support grants, newest first, each LIVE, EXPIRED or REVOKED" })
  async supportGrants(@Args(() => PageArgsInput) page: PageArgsInput, @Ctx() ctx: Context) {
    const result = await ctx.services.grants.list(currentUser(ctx).id, page);
    const now = new Date();
    return { ...result, edges: result.edges.map((e) => ({ ...e, node: toGrant(e.node, now) })) };
  }

  @Authorized()
  @Query(() => AuditEventConnection, {
    description:
      "The audit log, newest first: your own account's (logins, logouts, password changes, grants, destructive actions, every support read). An ADMIN reads every account's, or one account's with `userId`.",
  })
  async auditLog(@Args(() => AuditLogArgs) args: AuditLogArgs, @Ctx() ctx: Context) {
    const user = currentUser(ctx);
    let scope: string | null = user.id;
    if (user.role === "ADMIN") scope = args.userId ?? null;
    else if (args.userId && args.userId !== user.id) throw forbidden("Only an admin reads another account's audit log");
    const result = await ctx.services.audit.list(scope, args, ctx.limits);
    return { ...result, edges: result.edges.map((e) => ({ ...e, node: toEvent(e.node) })) };
  }
}
