import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Query, Resolver, Root } from "type-graphql";
import { PageArgsInput } from "../graphql/connection";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { Recovery } from "../recoveries/recovery.type";
import { Instance, InstanceConnection } from "./instance.type";

@Resolver(() => Instance)
export class InstanceResolver {
  @Authorized()
  @Query(() => InstanceConnection, { description: "Your recovered machines, newest first" })
  instances(@Args(() => PageArgsInput) page: PageArgsInput, @Ctx() ctx: Context) {
    return ctx.services.instances.list(currentUser(ctx).id, page);
  }

  @Authorized()
  @Query(() => Instance)
  instance(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.instances.get(currentUser(ctx).id, id);
  }

  @FieldResolver(() => Recovery, { nullable: true })
  recovery(@Root() instance: Instance, @Ctx() ctx: Context) {
    return instance.recoveryId ? ctx.services.recoveries.get(currentUser(ctx).id, instance.recoveryId) : null;
  }
}
