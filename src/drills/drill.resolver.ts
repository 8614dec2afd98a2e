import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import type { DrillPolicyRow } from "../db/schema";
import { BackupVerification } from "../verification/verification.type";
import { toGraphQL as verificationToGraphQL } from "../verification/verification.resolver";
import { verificationSnapshot } from "../verification/verification.service";
import { formatInterval } from "./drill.service";
import { Drill, DrillConnection, DrillPolicy, SourceHealth } from "./drill.type";
import { DrillsArgs, SetDrillPolicyInput } from "./drill.input";

function toPolicy(row: DrillPolicyRow | null): DrillPolicy | null {
  if (!row) return null;
  return {
    sourceName: row.sourceName,
    every: row.everyMs ? formatInterval(row.everyMs) : null,
    afterEveryBackup: row.afterEveryBackup,
    ports: row.ports,
    scheduled: row.scheduleId !== null,
    updatedAt: row.updatedAt,
  };
}

@Resolver(() => Drill)
export class DrillResolver {
  @Authorized()
  @Mutation(() => DrillPolicy, {
    description: "Set a source's drill policy: a Temporal Schedule drills its latest restore point every `every`, and/or after every backup. Replaces the previous policy; no interval removes the schedule.",
  })
  async setDrillPolicy(@Arg("input", () => SetDrillPolicyInput) input: SetDrillPolicyInput, @Ctx() ctx: Context) {
    await ctx.services.accounts.requireVerified(currentUser(ctx));
    return toPolicy(await ctx.services.drills.setPolicy(currentUser(ctx).id, input));
  }

  @Authorized()
  @Mutation(() => Boolean, { description: "Remove a source's drill policy and its schedule (the drill history stays). False when there was none." })
  deleteDrillPolicy(@Arg("sourceName") sourceName: string, @Ctx() ctx: Context) {
    return ctx.services.drills.deletePolicy(currentUser(ctx).id, sourceName);
  }

  @Authorized()
  @Query(() => DrillPolicy, { nullable: true })
  async drillPolicy(@Arg("sourceName") sourceName: string, @Ctx() ctx: Context) {
    return toPolicy(await ctx.services.drills.policy(currentUser(ctx).id, sourceName));
  }

  @Authorized()
  @Mutation(() => Drill, { description: "Drill a source now: recover its latest restore point in isolation, verify it boots, measure the RTO, clean up. EMAIL_NOT_VERIFIED until your e-mail address is verified." })
  async startDrill(@Arg("sourceName") sourceName: string, @Ctx() ctx: Context) {
    await ctx.services.accounts.requireVerified(currentUser(ctx));
    return ctx.services.drills.startNow(currentUser(ctx).id, sourceName);
  }

  @Authorized()
  @Mutation(() => Drill, { description: "Cancel a running drill; its machine, image and composed object are removed (the drill ends CANCELLED)" })
  cancelDrill(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.drills.cancel(currentUser(ctx).id, id);
  }

  @Authorized()
  @Query(() => DrillConnection, { description: "Your drills, newest first (of one source when sourceName is given)" })
  drills(@Args(() => DrillsArgs) args: DrillsArgs, @Ctx() ctx: Context) {
    return ctx.services.drills.list(currentUser(ctx).id, args, args.sourceName);
  }

  @Authorized()
  @Query(() => SourceHealth, { description: "A source's last verified restore point, last drill and RTO trend" })
  async sourceHealth(@Arg("sourceName") sourceName: string, @Ctx() ctx: Context): Promise<SourceHealth> {
    const h = await ctx.services.drills.health(currentUser(ctx).id, sourceName);
    return { ...h, policy: toPolicy(h.policy), lastDrill: h.lastDrill as Drill | null, rtoTrend: h.rtoTrend as SourceHealth["rtoTrend"] };
  }

  @FieldResolver(() => BackupVerification, { nullable: true, description: "The boot verification the drill ran: verdict, evidence, screenshot" })
  async verification(@Root() drill: Drill, @Ctx() ctx: Context) {
    if (!drill.verificationId) return null;
    const row = await ctx.services.verifications.get(currentUser(ctx).id, drill.verificationId);
    return verificationToGraphQL(verificationSnapshot(row), ctx);
  }
}
