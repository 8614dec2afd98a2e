import { Authorized, Ctx, FieldResolver, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { User } from "../users/user.type";
import { Quota } from "./quota.type";
import { forbidden } from "../shared/errors";

@Resolver(() => User)
export class QuotaResolver {
  @Authorized()
  @FieldResolver(() => Quota, { description: "Your fair-use limits and usage" })
  async quota(@Root() user: User, @Ctx() ctx: Context): Promise<Quota> {
    // Only ever the signed-in user's own quota.
    const me = currentUser(ctx);
    if (user.id !== me.id) throw forbidden("A quota is only readable on `me`");
    return { ...(await ctx.services.quotas.usage(me.id)), uploadExpirySeconds: Math.round(ctx.services.quotas.uploadExpiryMs / 1000) };
  }
}
