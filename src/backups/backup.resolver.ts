import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { auditOwnAction } from "../graphql/audit";
import { requester, requireFreshAuth } from "../graphql/fresh-auth";
import { BackupMaintenanceService } from "./backup-maintenance.service";
import { withoutNulls } from "../graphql/nulls";
import { Topic, type BackupChangedEvent } from "../events/topics";
import { Upload } from "../uploads/upload.type";
import { Backup, BackupConnection, BackupSuspicion, ChunkUploadBatch, RetentionPolicy, SuspectVerdict } from "./backup.type";
import type { BackupSuspicion as SuspicionData } from "../db/schema";
import { BackupsArgs, CompleteBackupInput, CreateBackupInput, RequestChunkUploadsInput, RetentionPolicyInput } from "./backup.input";

@Resolver(() => Backup)
export class BackupResolver {
  @Authorized()
  @Query(() => BackupConnection, { description: "Your backups, newest first" })
  backups(@Args(() => BackupsArgs) args: BackupsArgs, @Ctx() ctx: Context) {
    return ctx.services.backups.list(currentUser(ctx).id, args, withoutNulls(args.filter));
  }

  @Authorized()
  @Query(() => Backup)
  backup(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.backups.get(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Backup, { description: "Start a backup (UPLOADING) with its upload session" })
  createBackup(@Arg("input", () => CreateBackupInput) input: CreateBackupInput, @Ctx() ctx: Context) {
    return ctx.services.backups.create(currentUser(ctx).id, input);
  }

  @Authorized()
  @Mutation(() => ChunkUploadBatch, { description: "For each chunk: already stored, or a presigned PUT URL bound to its key, size and checksum" })
  requestChunkUploads(@Arg("input", () => RequestChunkUploadsInput) input: RequestChunkUploadsInput, @Ctx() ctx: Context) {
    return ctx.services.backupLifecycle.requestChunkUploads(currentUser(ctx).id, input);
  }

  @Authorized()
  @Mutation(() => Backup, { description: "Verify every chunk is stored, write the manifest, mark COMPLETED. Missing chunks: BAD_USER_INPUT (reason CHUNKS_MISSING), the backup stays UPLOADING." })
  completeBackup(@Arg("input", () => CompleteBackupInput) input: CompleteBackupInput, @Ctx() ctx: Context) {
    return ctx.services.backupLifecycle.complete(currentUser(ctx).id, input);
  }

  @Authorized()
  @Mutation(() => Backup, { description: "Abandon an UPLOADING backup" })
  abortBackup(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.backupLifecycle.abort(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Backup, {
    description:
      "Delete a backup. Needs a fresh authentication (reauthenticate; else REAUTH_REQUIRED). A COMPLETED restore point goes to the trash: it stays restorable until deleteAfter (DELETION_DELAY), you are e-mailed at once, and restoreFromTrash undoes it; then maintenance deletes it and the GC reclaims chunks no other restore point uses. An unfinished backup is deleted at once.",
  })
  async deleteBackup(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    const userId = currentUser(ctx).id;
    await ctx.services.backups.get(userId, id); // NOT_FOUND before REAUTH_REQUIRED: another's id tells nothing either way
    await requireFreshAuth(ctx);
    const backup = await ctx.services.trash.deleteBackup(userId, id, requester(ctx));
    await auditOwnAction(ctx, "backup.delete", `Backup:${backup.id}`, { sourceName: backup.sourceName, kind: backup.kind, deleteAfter: backup.deleteAfter?.toISOString() ?? null });
    return backup;
  }

  @Authorized()
  @Mutation(() => Backup, {
    description:
      "Answer an encryption alarm. SAFE (the change was legitimate): the restore point counts as clean again and retention stops holding back the clean restore points before it; it removes a protection, so it needs a fresh authentication (reauthenticate; else REAUTH_REQUIRED). ENCRYPTED (no fresh authentication needed): the point stays marked and the clean restore points before it stay held — retention never removes them; only deleting them (through the trash) does.",
  })
  async resolveSuspectBackup(
    @Arg("id", () => ID) id: string,
    // Nullable so the owner check answers first (NOT_FOUND for another user's id); missing is BAD_USER_INPUT.
    @Arg("verdict", () => SuspectVerdict, { nullable: true, description: "Required" }) verdict: SuspectVerdict | null,
    @Ctx() ctx: Context,
  ) {
    const userId = currentUser(ctx).id;
    // NOT_FOUND, BAD_USER_INPUT and CONFLICT before REAUTH_REQUIRED: nothing to re-enter a password for.
    await ctx.services.backupLifecycle.suspectToResolve(userId, id, verdict);
    if (verdict === "SAFE") await requireFreshAuth(ctx);
    const backup = await ctx.services.backupLifecycle.resolveSuspect(userId, id, verdict);
    await auditOwnAction(ctx, "backup.resolveSuspect", `Backup:${backup.id}`, { sourceName: backup.sourceName, verdict });
    return backup;
  }

  @FieldResolver(() => BackupSuspicion, { nullable: true, description: "Set when the encryption alarm (possible ransomware) went off for this restore point" })
  suspect(@Root() backup: Backup & { suspect?: SuspicionData | null }): BackupSuspicion | null {
    if (!backup.suspect) return null;
    return { ...backup.suspect, verdict: backup.suspectVerdict ?? null, resolvedAt: backup.suspectResolvedAt ?? null };
  }

  @Authorized()
  @Mutation(() => RetentionPolicy, {
    description:
      "How many weekly fulls and days of restore points to keep (applied by the backup-maintenance schedule). Keeping more applies at once; keeping less (or a first policy: none keeps everything) needs a fresh authentication (REAUTH_REQUIRED) and waits DELETION_DELAY in the trash (pending*), with an e-mail at once.",
  })
  async setRetentionPolicy(@Arg("input", () => RetentionPolicyInput) input: RetentionPolicyInput, @Ctx() ctx: Context) {
    const userId = currentUser(ctx).id;
    BackupMaintenanceService.validatePolicy(input);
    const current = await ctx.services.maintenance.retentionPolicy(userId);
    const shortens = !current || input.keepWeeklyFull < current.keepWeeklyFull || input.keepDaily < current.keepDaily;
    if (!shortens) return ctx.services.maintenance.setRetentionPolicy(userId, input);
    await requireFreshAuth(ctx);
    const row = await ctx.services.trash.shortenRetention(userId, input, current, requester(ctx));
    await auditOwnAction(ctx, "retention.shorten_requested", `RetentionPolicy:${userId}`, { keepWeeklyFull: input.keepWeeklyFull, keepDaily: input.keepDaily, effectiveAt: row.pendingEffectiveAt?.toISOString() ?? null });
    return row;
  }

  @Authorized()
  @Query(() => RetentionPolicy, { nullable: true })
  retentionPolicy(@Ctx() ctx: Context) {
    return ctx.services.maintenance.retentionPolicy(currentUser(ctx).id);
  }

  @FieldResolver(() => Boolean, { description: "COMPLETED and every chunk of its manifest present in the store" })
  restorable(@Root() backup: Backup, @Ctx() ctx: Context) {
    return ctx.services.backupLifecycle.restorable(currentUser(ctx).id, backup as never);
  }

  @FieldResolver(() => Backup, { nullable: true, description: "The backup an incremental was taken against" })
  parent(@Root() backup: Backup, @Ctx() ctx: Context) {
    return backup.parentId ? ctx.services.backups.find(currentUser(ctx).id, backup.parentId) : null;
  }

  @FieldResolver(() => Upload, { nullable: true, description: "Its latest upload: the run sending it now, or the last one" })
  upload(@Root() backup: Backup, @Ctx() ctx: Context) {
    return ctx.services.uploads.forBackup(currentUser(ctx).id, backup.id);
  }

  @Authorized()
  @Subscription(() => Backup, {
    topics: Topic.BACKUP_CHANGED,
    // Routed by user id: the event stream itself only carries this user's backups.
    topicId: ({ context }: { context: Context }) => currentUser(context).id,
    description: "Each change to one of your backups",
  })
  backupChanged(@Root() event: BackupChangedEvent, @Ctx() ctx: Context) {
    return ctx.services.backups.get(currentUser(ctx).id, event.backupId);
  }
}
