import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from "type-graphql";
import { Backup } from "../backups/backup.type";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { withoutNulls } from "../graphql/nulls";
import { Instance } from "../instances/instance.type";
import { Recovery, RecoveryConnection, RecoveryEvent, RecoveryTargets, WaitingForWorker } from "./recovery.type";
import { RecoveriesArgs, StartRecoveryInput } from "./recovery.input";
import type { RecoverySnapshot } from "../events/topics";
import { BootCheck, type BootCheckStatus } from "./boot-check.type";
import type { EvidenceKind } from "../verification/verification.type";

/** A snapshot from an event (ISO dates) as the Recovery object type. */
function fromSnapshot(s: RecoverySnapshot): Recovery {
  const d = (v: string | null) => (v ? new Date(v) : null);
  return { ...s, startedAt: d(s.startedAt), deadlineAt: d(s.deadlineAt), completedAt: d(s.completedAt), createdAt: new Date(s.createdAt) } as Recovery;
}

@Resolver(() => Recovery)
export class RecoveryResolver {
  @Authorized()
  @Query(() => RecoveryConnection, { description: "Your recoveries, newest first" })
  recoveries(@Args(() => RecoveriesArgs) args: RecoveriesArgs, @Ctx() ctx: Context) {
    return ctx.services.recoveries.list(currentUser(ctx).id, args, withoutNulls(args.filter));
  }

  @Authorized()
  @Query(() => RecoveryTargets, { description: "Where recovered machines can run on this server, and the default" })
  recoveryTargets(@Ctx() ctx: Context): RecoveryTargets {
    return ctx.services.recoveries.targets() as RecoveryTargets;
  }

  @Authorized()
  @Query(() => Recovery)
  recovery(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.recoveries.get(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Recovery, { description: "Recover a restore point into a new machine. While a recovery of that backup is active, returns it instead of starting another. EMAIL_NOT_VERIFIED until your e-mail address is verified (REQUIRE_VERIFIED_EMAIL)." })
  async startRecovery(@Arg("input", () => StartRecoveryInput) input: StartRecoveryInput, @Ctx() ctx: Context) {
    await ctx.services.accounts.requireVerified(currentUser(ctx));
    return ctx.services.recoveries.start(currentUser(ctx).id, input, ctx.ip);
  }

  @Authorized()
  @Mutation(() => Recovery, {
    description:
      "Start a FAILED or CANCELLED recovery again as a new recovery: the same backup, target, allowed CIDR, internet access and ports (CONFLICT for a recovery in any other state). Support may call it on a READ_AND_RETRY grant.",
  })
  async retryRecovery(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    await ctx.services.accounts.requireVerified(currentUser(ctx));
    return ctx.services.recoveries.retry(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Recovery, { description: "Cancel an active recovery: everything it created is removed, then it is CANCELLED" })
  cancelRecovery(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.recoveries.cancel(currentUser(ctx).id, id);
  }

  @Authorized()
  @Subscription(() => Recovery, {
    subscribe: ({ args, context }) => (context as Context).services.recoveries.progress(currentUser(context as Context).id, args.recoveryId as string),
    description: "The recovery's current state at once, then every change; completes after COMPLETED, FAILED or CANCELLED",
  })
  recoveryProgress(@Arg("recoveryId", () => ID) _recoveryId: string, @Root() snapshot: RecoverySnapshot): Recovery {
    return fromSnapshot(snapshot);
  }

  @FieldResolver(() => [RecoveryEvent], { description: "Timeline: each step's start, retries, end, and cleanup actions" })
  events(@Root() recovery: Recovery, @Ctx() ctx: Context) {
    return ctx.services.recoveries.events(currentUser(ctx).id, recovery.id);
  }

  @FieldResolver(() => WaitingForWorker, {
    nullable: true,
    description: "Set while the recovery waits for a worker (its worker stopped: no heartbeat for a few seconds, or no worker takes its next step); null while one works on it, and once it has ended",
  })
  async waitingForWorker(@Root() recovery: Recovery, @Ctx() ctx: Context): Promise<WaitingForWorker | null> {
    // The live subscription looked already (and looks again while nothing changes).
    if (recovery.waitingForWorker !== undefined) return recovery.waitingForWorker && { since: new Date(recovery.waitingForWorker.since), observed: recovery.waitingForWorker.observed };
    const row = recovery.workflowId ? recovery : await ctx.services.recoveries.get(currentUser(ctx).id, recovery.id);
    const wait = await ctx.services.recoveries.waitingForWorker({ state: row.state, workflowId: row.workflowId! });
    return wait && { since: wait.since, observed: wait.observed };
  }

  @FieldResolver(() => Backup, { description: "The restore point being recovered" })
  backup(@Root() recovery: Recovery, @Ctx() ctx: Context) {
    return ctx.services.backups.get(currentUser(ctx).id, recovery.backupId);
  }

  @FieldResolver(() => BootCheck, { nullable: true, description: "\"Checking it started\": the verdict and evidence from the machine after launch (null before CHECKING)" })
  async bootCheck(@Root() recovery: Recovery, @Ctx() ctx: Context): Promise<BootCheck | null> {
    const b = recovery.bootCheck;
    if (!b) return null;
    // A failed or cancelled recovery removed its screenshot with everything else.
    const kept = b.screenshotKey && recovery.state !== "FAILED" && recovery.state !== "CANCELLED";
    return {
      status: b.status as BootCheckStatus,
      evidence: b.evidence.map((e) => ({ kind: e.kind as EvidenceKind, ok: e.ok, failure: Boolean(e.failure), detail: e.detail, at: new Date(e.at) })),
      reason: b.reason ?? null,
      screenText: b.screenText ?? null,
      screenshotUrl: kept ? (await ctx.services.instances.presignArtifact(b.screenshotKey!)).url : null,
      checkedAt: b.checkedAt ? new Date(b.checkedAt) : null,
    };
  }

  @FieldResolver(() => Instance, { nullable: true, description: "The machine it produced, once launched" })
  instance(@Root() recovery: Recovery, @Ctx() ctx: Context) {
    return ctx.services.instances.forRecovery(currentUser(ctx).id, recovery.id);
  }
}
