import { Arg, Args, Authorized, Ctx, FieldResolver, Float, ID, Int, Mutation, Query, Resolver, Root, Subscription } from "type-graphql";
import { Backup } from "../backups/backup.type";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { withoutNulls } from "../graphql/nulls";
import type { UploadSnapshot } from "../events/topics";
import { currentRate, fromSnapshot, secondsLeft } from "./upload.service";
import { Upload, UploadConnection } from "./upload.type";
import { ConfirmChunksInput, FailUploadInput, UploadsArgs } from "./upload.input";

@Resolver(() => Upload)
export class UploadResolver {
  @Authorized()
  @Query(() => UploadConnection, { description: "Your upload sessions, newest first" })
  uploads(@Args(() => UploadsArgs) args: UploadsArgs, @Ctx() ctx: Context) {
    return ctx.services.uploads.list(currentUser(ctx).id, args, withoutNulls(args.filter));
  }

  @Authorized()
  @Query(() => Upload)
  upload(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.uploads.get(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Upload, { description: "The agent confirms chunks it sent (in batches): each is counted in bytesSent once the store holds it; bytesDone, rate and ETA follow" })
  confirmChunks(@Arg("input", () => ConfirmChunksInput) input: ConfirmChunksInput, @Ctx() ctx: Context) {
    return ctx.services.uploads.confirmChunks(currentUser(ctx).id, input);
  }

  @Authorized()
  @Mutation(() => Upload, { description: "The agent says why it could not finish: the upload becomes FAILED with the reason and you are notified. The backup stays UPLOADING (a later run may resume it)." })
  failUpload(@Arg("input", () => FailUploadInput) input: FailUploadInput, @Ctx() ctx: Context) {
    return ctx.services.uploads.fail(currentUser(ctx).id, input);
  }

  @Authorized()
  @Subscription(() => Upload, {
    subscribe: ({ args, context }) =>
      (context as Context).services.uploads.watch(currentUser(context as Context).id, { uploadId: args.uploadId as string | undefined, sourceName: args.sourceName as string | undefined }),
    description:
      "Give uploadId: that upload at once, then each change (at most ~2 a second), completing when it ends. Give sourceName: that source's latest upload at once, then each change of its uploads (the next backup's too).",
  })
  uploadProgress(
    @Arg("uploadId", () => ID, { nullable: true }) _uploadId: string | undefined,
    @Arg("sourceName", () => String, { nullable: true }) _sourceName: string | undefined,
    @Root() snapshot: UploadSnapshot,
  ): Upload {
    return fromSnapshot(snapshot) as Upload;
  }

  @FieldResolver(() => String, { description: "The source (server) being backed up" })
  async sourceName(@Root() upload: Upload, @Ctx() ctx: Context): Promise<string> {
    return upload.sourceName ?? ctx.services.uploads.sourceOf(currentUser(ctx).id, upload.backupId);
  }

  @FieldResolver(() => Float, { description: "Bytes of the image dealt with per second, over the last ~20 s (0 when nothing moved for 30 s or it is not ACTIVE)" })
  rate(@Root() upload: Upload): number {
    return currentRate(upload as never, new Date());
  }

  @FieldResolver(() => Int, { nullable: true, description: "Seconds left at the current rate (null when not ACTIVE or no rate yet)" })
  etaSeconds(@Root() upload: Upload): number | null {
    return secondsLeft(upload as never, new Date());
  }

  @FieldResolver(() => Date, { nullable: true, description: "When it should finish at the current rate" })
  eta(@Root() upload: Upload): Date | null {
    const left = secondsLeft(upload as never, new Date());
    return left === null ? null : new Date(Date.now() + left * 1000);
  }

  @FieldResolver(() => Backup)
  backup(@Root() upload: Upload, @Ctx() ctx: Context) {
    return ctx.services.backups.get(currentUser(ctx).id, upload.backupId);
  }
}
