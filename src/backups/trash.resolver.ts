import { Arg, Authorized, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { auditOwnAction } from "../graphql/audit";
import { TrashItem } from "./trash.type";

@Resolver(() => TrashItem)
export class TrashResolver {
  @Authorized()
  @Query(() => [TrashItem], { description: "Your deletions and retention shortenings still waiting for DELETION_DELAY, soonest first" })
  trash(@Ctx() ctx: Context) {
    return ctx.services.trash.list(currentUser(ctx).id);
  }

  @Authorized()
  @Mutation(() => TrashItem, { description: "Undo a pending deletion or retention shortening (NOT_FOUND once it took effect)" })
  async restoreFromTrash(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    const item = await ctx.services.trash.restore(currentUser(ctx).id, id);
    await auditOwnAction(ctx, "trash.restore", item.kind === "BACKUP" ? `Backup:${item.id}` : item.id, { kind: item.kind });
    return item;
  }
}
