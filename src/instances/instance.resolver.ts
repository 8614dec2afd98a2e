import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root, Subscription } from "type-graphql";
import { Topic, type InstanceChangedEvent } from "../events/topics";
import { PageArgsInput } from "../graphql/connection";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { auditOwnAction } from "../graphql/audit";
import { Recovery } from "../recoveries/recovery.type";
import { Instance, InstanceConnection, Screenshot } from "./instance.type";

@Resolver(() => Instance)
export class InstanceResolver {
  @Authorized()
  @Query(() => InstanceConnection, { description: "Your recovered machines, newest first" })
  instances(@Args(() => PageArgsInput) page: PageArgsInput, @Ctx() ctx: Context) {
    return ctx.services.instances.list(currentUser(ctx).id, page);
  }

  @Authorized()
  @Query(() => Instance, { description: "One of your machines, its state refreshed from the provider" })
  instance(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.instances.sync(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Instance)
  startInstance(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.instances.start(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Instance, { description: "Graceful shutdown (forced after a timeout); the disk is kept" })
  stopInstance(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.instances.stop(currentUser(ctx).id, id);
  }

  @Authorized()
  @Mutation(() => Instance, { description: "Destroy the machine and everything its recovery left at the target" })
  async terminateInstance(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    const instance = await ctx.services.instances.terminate(currentUser(ctx).id, id);
    await auditOwnAction(ctx, "instance.terminate", `Instance:${instance.id}`, { name: instance.name, provider: instance.provider });
    return instance;
  }

  @Authorized()
  @Subscription(() => Instance, {
    topics: Topic.INSTANCE_CHANGED,
    topicId: ({ context }: { context: Context }) => currentUser(context).id,
    description: "Each change to one of your machines: recorded by a recovery, started, stopping, stopped, terminated, lost, or a new address",
  })
  instanceChanged(@Root() event: InstanceChangedEvent, @Ctx() ctx: Context) {
    return ctx.services.instances.get(currentUser(ctx).id, event.instanceId);
  }

  @FieldResolver(() => String, { description: "Tail of the serial console (EC2 GetConsoleOutput, or the QEMU serial log)" })
  consoleOutput(@Root() instance: Instance, @Ctx() ctx: Context) {
    return ctx.services.instances.consoleOutput(currentUser(ctx).id, instance.id);
  }

  @FieldResolver(() => Screenshot, { description: "Takes a console screenshot now (QMP screendump locally, GetConsoleScreenshot on EC2)" })
  screenshot(@Root() instance: Instance, @Ctx() ctx: Context) {
    return ctx.services.instances.screenshot(currentUser(ctx).id, instance.id);
  }

  @FieldResolver(() => Recovery, { nullable: true })
  recovery(@Root() instance: Instance, @Ctx() ctx: Context) {
    return instance.recoveryId ? ctx.services.recoveries.get(currentUser(ctx).id, instance.recoveryId) : null;
  }
}
