import { Arg, Authorized, Ctx, ID, Mutation, Query, Resolver } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { auditOwnAction } from "../graphql/audit";
import { requester, requireFreshAuth } from "../graphql/fresh-auth";
import { TrashItem } from "../backups/trash.type";
import type { AgentKeyRow } from "../db/schema";
import { AppError, ErrorCode } from "../shared/errors";
import { AgentKey, CreatedAgentKey } from "./agent-key.type";
import { CreateAgentKeyInput } from "./agent-key.input";

const shown = (row: AgentKeyRow): AgentKey => ({
  id: row.id,
  sourceName: row.sourceName,
  note: row.note,
  createdAt: row.createdAt,
  lastUsedAt: row.lastUsedAt,
  lastUsedIp: row.lastUsedIp,
  revokedAt: row.revokedAt,
});

/** Keys are managed by a signed-in session only (the agent scope refuses these fields too: this is a second lock). */
function sessionOwner(ctx: Context) {
  if (ctx.agent) throw new AppError(ErrorCode.FORBIDDEN, "An agent key cannot manage agent keys", { reason: "AGENT_KEY_SCOPE" });
  return currentUser(ctx);
}

@Resolver(() => AgentKey)
export class AgentKeyResolver {
  @Authorized()
  @Query(() => [AgentKey], { description: "Your agent keys (revoked ones too), newest first; never their secret" })
  async agentKeys(@Ctx() ctx: Context): Promise<AgentKey[]> {
    return (await ctx.services.agentKeys.list(sessionOwner(ctx).id)).map(shown);
  }

  @Authorized()
  @Mutation(() => CreatedAgentKey, { description: "A key for one source's backup agent; its secret is in this response only" })
  async createAgentKey(@Arg("input", () => CreateAgentKeyInput) input: CreateAgentKeyInput, @Ctx() ctx: Context): Promise<CreatedAgentKey> {
    const created = await ctx.services.agentKeys.create(sessionOwner(ctx).id, input);
    await auditOwnAction(ctx, "agent_key.create", `AgentKey:${created.row.id}`, { sourceName: created.row.sourceName });
    return { agentKey: shown(created.row), secret: created.key };
  }

  @Authorized()
  @Mutation(() => AgentKey, { description: "The key stops working at once (idempotent)" })
  async revokeAgentKey(@Arg("id", () => ID) id: string, @Ctx() ctx: Context): Promise<AgentKey> {
    const row = await ctx.services.agentKeys.revoke(sessionOwner(ctx).id, id);
    await auditOwnAction(ctx, "agent_key.revoke", `AgentKey:${row.id}`);
    return shown(row);
  }

  @Authorized()
  @Mutation(() => TrashItem, {
    description:
      "Revoke all your agent keys. Needs a fresh authentication (REAUTH_REQUIRED) and waits DELETION_DELAY in the trash (AgentKeys:<your user id>), with an e-mail at once; restoreFromTrash cancels it. When it takes effect, every key still active is revoked. To stop one stolen key at once, use revokeAgentKey.",
  })
  async revokeAllAgentKeys(@Ctx() ctx: Context) {
    const userId = sessionOwner(ctx).id;
    await requireFreshAuth(ctx);
    const item = await ctx.services.trash.revokeAllAgentKeys(userId, requester(ctx));
    await auditOwnAction(ctx, "agent_key.revoke_all_requested", item.id, { effectiveAt: item.effectiveAt.toISOString() });
    return item;
  }
}
