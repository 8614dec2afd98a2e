import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { Topic, type BackupChangedEvent } from "../graphql/pubsub";
import { Upload } from "../uploads/upload.type";
import { Backup, BackupConnection } from "./backup.type";
import { BackupsArgs, CreateBackupInput } from "./backup.input";

@Resolver(() => Backup)
export class BackupResolver {
  @Authorized()
  @Query(() => BackupConnection, { description: "Your backups, newest first" })
  backups(@Args(() => BackupsArgs) args: BackupsArgs, @Ctx() ctx: Context) {
    return ctx.services.backups.list(currentUser(ctx).id, args, args.filter);
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

  @FieldResolver(() => Backup, { nullable: true, description: "The backup an incremental was taken against" })
  parent(@Root() backup: Backup, @Ctx() ctx: Context) {
    return backup.parentId ? ctx.services.backups.find(currentUser(ctx).id, backup.parentId) : null;
  }

  @FieldResolver(() => Upload, { nullable: true, description: "The upload session of this backup" })
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
