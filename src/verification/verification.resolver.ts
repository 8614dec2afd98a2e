import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Resolver, Root, Subscription } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { Backup } from "../backups/backup.type";
import type { VerificationSnapshot } from "../events/topics";
import { verificationSnapshot } from "./verification.service";
import { BackupVerification, type BootEvidence } from "./verification.type";
import { VerifyBackupInput } from "./verification.input";

export async function toGraphQL(s: VerificationSnapshot, ctx: Context): Promise<BackupVerification> {
  const d = (v: string | null) => (v ? new Date(v) : null);
  return {
    id: s.id,
    status: s.status as BackupVerification["status"],
    bootSeconds: s.bootSeconds,
    evidence: (s.evidence ?? []).map((e) => ({ ...e, at: new Date(e.at) }) as BootEvidence),
    screenText: s.screenText ?? null,
    screenshotUrl: s.screenshotKey ? (await ctx.services.instances.presignArtifact(s.screenshotKey)).url : null,
    failureReason: s.failureReason,
    startedAt: d(s.startedAt),
    checkedAt: d(s.checkedAt),
  };
}

@Resolver(() => Backup)
export class VerificationResolver {
  @Authorized()
  @Mutation(() => BackupVerification, { description: "Prove a backup boots: recover it in isolation on the local target, collect boot evidence (firmware log, OCR'd screen, service banners, serial marker), clean up. Returns the running verification if one is in progress. EMAIL_NOT_VERIFIED until your e-mail address is verified." })
  async verifyBackup(@Arg("input", () => VerifyBackupInput) input: VerifyBackupInput, @Ctx() ctx: Context) {
    await ctx.services.accounts.requireVerified(currentUser(ctx));
    const row = await ctx.services.verifications.start(currentUser(ctx).id, input);
    return toGraphQL(verificationSnapshot(row), ctx);
  }

  @FieldResolver(() => BackupVerification, { nullable: true, description: "The latest boot verification of this backup" })
  async verification(@Root() backup: Backup, @Ctx() ctx: Context) {
    const row = await ctx.services.verifications.latest(currentUser(ctx).id, backup.id);
    return row ? toGraphQL(verificationSnapshot(row), ctx) : null;
  }

  @Authorized()
  @Subscription(() => BackupVerification, {
    subscribe: ({ args, context }) => (context as Context).services.verifications.watch(currentUser(context as Context).id, args.backupId as string),
    description: "The backup's latest verification at once (if any), then every change (each new piece of evidence), until VERIFIED, FAILED or INCONCLUSIVE",
  })
  backupVerification(@Arg("backupId", () => ID) _backupId: string, @Root() snapshot: VerificationSnapshot, @Ctx() ctx: Context) {
    return toGraphQL(snapshot, ctx);
  }
}
