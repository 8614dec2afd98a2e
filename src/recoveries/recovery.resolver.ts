import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Query, Resolver, Root } from "type-graphql";
import { Backup } from "../backups/backup.type";
import { PageArgsInput } from "../graphql/connection";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { Instance } from "../instances/instance.type";
import { Recovery, RecoveryConnection } from "./recovery.type";

@Resolver(() => Recovery)
export class RecoveryResolver {
  @Authorized()
  @Query(() => RecoveryConnection, { description: "Your recoveries, newest first" })
  recoveries(@Args(() => PageArgsInput) page: PageArgsInput, @Ctx() ctx: Context) {
    return ctx.services.recoveries.list(currentUser(ctx).id, page);
  }

  @Authorized()
  @Query(() => Recovery)
  recovery(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.recoveries.get(currentUser(ctx).id, id);
  }

  @FieldResolver(() => Backup, { description: "The restore point being recovered" })
  backup(@Root() recovery: Recovery, @Ctx() ctx: Context) {
    return ctx.services.backups.get(currentUser(ctx).id, recovery.backupId);
  }

  @FieldResolver(() => Instance, { nullable: true, description: "The machine it produced, once launched" })
  instance(@Root() recovery: Recovery, @Ctx() ctx: Context) {
    return ctx.services.instances.forRecovery(currentUser(ctx).id, recovery.id);
  }
}
