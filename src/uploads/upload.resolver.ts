import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Query, Resolver, Root } from "type-graphql";
import { Backup } from "../backups/backup.type";
import { PageArgsInput } from "../graphql/connection";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { Upload, UploadConnection } from "./upload.type";

@Resolver(() => Upload)
export class UploadResolver {
  @Authorized()
  @Query(() => UploadConnection, { description: "Your upload sessions, newest first" })
  uploads(@Args(() => PageArgsInput) page: PageArgsInput, @Ctx() ctx: Context) {
    return ctx.services.uploads.list(currentUser(ctx).id, page);
  }

  @Authorized()
  @Query(() => Upload)
  upload(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.uploads.get(currentUser(ctx).id, id);
  }

  @FieldResolver(() => Backup)
  backup(@Root() upload: Upload, @Ctx() ctx: Context) {
    return ctx.services.backups.get(currentUser(ctx).id, upload.backupId);
  }
}
