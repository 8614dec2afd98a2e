import { Arg, Authorized, Ctx, FieldResolver, Query, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser, signedInUser } from "../graphql/context";
import { Recovery } from "../recoveries/recovery.type";
import { RecoveryDiagnostics, SupportCustomer, Viewer } from "./acting.type";

@Resolver()
export class SupportResolver {
  @Authorized()
  @Query(() => Viewer, { description: "Who this request runs as: your role and, when support acts on a customer's grant (X-ReClo-Act-For), whose account and until when" })
  viewer(@Ctx() ctx: Context): Viewer {
    const me = signedInUser(ctx);
    const customer = ctx.actingFor;
    return {
      role: me.role,
      email: me.email,
      actingFor: customer ? { email: customer.email, username: customer.username } : null,
      grant: ctx.grant ? { scope: ctx.grant.scope, note: ctx.grant.note, createdAt: ctx.grant.createdAt, expiresAt: ctx.grant.expiresAt } : null,
    };
  }

  @Authorized()
  @Query(() => SupportCustomer, { description: "Support staff only: a customer's e-mail and account status (verified, created, live grant until), without a grant. NOT_FOUND for an address without a customer account; FORBIDDEN for customers." })
  async supportCustomer(@Arg("email") email: string, @Ctx() ctx: Context): Promise<SupportCustomer> {
    const me = signedInUser(ctx);
    const status = await ctx.services.support.customerStatus(me, email);
    // The customer sees that support looked them up, too.
    await ctx.services.audit.record({ userId: status.userId, actor: { id: me.id, role: me.role }, action: "support.lookup", target: "supportCustomer", detail: { fields: ["supportCustomer"] }, ip: ctx.ip, requestId: ctx.requestId });
    return status;
  }
}

@Resolver(() => Recovery)
export class RecoveryDiagnosticsResolver {
  @FieldResolver(() => RecoveryDiagnostics, { description: "What support needs to answer \"why did it fail\": resources created, attempts per step, provider error codes, the Temporal workflow and run, and its history link" })
  async diagnostics(@Root() recovery: Recovery, @Ctx() ctx: Context): Promise<RecoveryDiagnostics> {
    const d = await ctx.services.support.recoveryDiagnostics(currentUser(ctx).id, recovery.id);
    const r = d.resources;
    return {
      ...d,
      resources: {
        composedKey: r.composedKey ?? null,
        importTaskId: r.importTaskId ?? null,
        imageId: r.imageId ?? null,
        snapshotIds: r.snapshotIds ?? [],
        instanceId: r.instanceId ?? null,
        securityGroupId: r.securityGroupId ?? null,
      },
    };
  }
}
