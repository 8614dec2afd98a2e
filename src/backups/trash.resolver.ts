import { Arg, Authorized, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { auditOwnAction } from "../graphql/audit";
import { requester, requireFreshAuth } from "../graphql/fresh-auth";
import { TrashItem } from "./trash.type";

@Resolver(() => TrashItem)
export class TrashResolver {
  @Authorized()
  @Query(() => [TrashItem], { description: "Your deletions, retention shortenings and key revocations still waiting for DELETION_DELAY, soonest first" })
  trash(@Ctx() ctx: Context) {
    return ctx.services.trash.list(currentUser(ctx).id);
  }

  @Authorized()
  @Mutation(() => TrashItem, { description: "Undo a pending deletion, retention shortening or revocation of all agent keys (NOT_FOUND once it took effect)" })
  async restoreFromTrash(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    const item = await ctx.services.trash.restore(currentUser(ctx).id, id);
    await auditOwnAction(ctx, "trash.restore", item.kind === "BACKUP" ? `Backup:${item.id}` : item.id, { kind: item.kind });
    return item;
  }

  @Authorized()
  @Mutation(() => TrashItem, {
    description:
      "Delete a source with all its restore points, agent keys and schedule. Needs a fresh authentication (reauthenticate; else REAUTH_REQUIRED). It goes to the trash as one item (Source:<name>) for DELETION_DELAY, you are e-mailed at once, and restoreFromTrash undoes it; meanwhile its restore points stay restorable, its agent keeps backing up and no missed backup is reported. Then maintenance deletes its restore points (the GC reclaims chunks no other restore point uses), revokes its agent keys and removes its schedule. NOT_FOUND for a source you do not have.",
  })
  async deleteSource(@Arg("name") name: string, @Ctx() ctx: Context) {
    const userId = currentUser(ctx).id;
    const sourceName = await ctx.services.trash.findSource(userId, name); // NOT_FOUND before REAUTH_REQUIRED, as deleteBackup
    await requireFreshAuth(ctx);
    const item = await ctx.services.trash.deleteSource(userId, sourceName, requester(ctx));
    await auditOwnAction(ctx, "source.delete", item.id, { sourceName, effectiveAt: item.effectiveAt.toISOString() });
    return item;
  }
}
