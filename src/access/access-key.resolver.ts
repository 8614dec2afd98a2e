import { Arg, Authorized, Ctx, FieldResolver, ID, Mutation, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { auditOwnAction } from "../graphql/audit";
import { Instance } from "../instances/instance.type";
import type { InstanceRow } from "../db/schema";
import type { AccessKeyRow } from "../db/schema";
import { AccessKey, PrivateAccess } from "./access-key.type";
import { CreateAccessKeyInput } from "./access-key.input";

/** A stored key as the API shows it: never a private key (only createAccessKey's own answer has one). */
const shown = (row: AccessKeyRow & { lastHandshakeAt?: Date | null }): AccessKey => ({
  id: row.id,
  deviceName: row.deviceName,
  address: row.address,
  createdAt: row.createdAt,
  expiresAt: row.expiresAt,
  revokedAt: row.revokedAt,
  lastHandshakeAt: row.lastHandshakeAt ?? null,
  wireguardConfig: null,
  qrCodeSvg: null,
});

@Resolver(() => AccessKey)
export class AccessKeyResolver {
  @Authorized()
  @Mutation(() => AccessKey, {
    description:
      "A WireGuard key for one of your devices to reach a RUNNING machine privately. The private key is made on the server and appears only in this response's wireguardConfig and qrCodeSvg: it is not stored, so save the configuration now",
  })
  async createAccessKey(@Arg("input", () => CreateAccessKeyInput) input: CreateAccessKeyInput, @Ctx() ctx: Context): Promise<AccessKey> {
    const created = await ctx.services.access.create(currentUser(ctx).id, input);
    return { ...shown(created.key), wireguardConfig: created.wireguardConfig, qrCodeSvg: created.qrCodeSvg };
  }

  @Authorized()
  @Mutation(() => AccessKey, { description: "The machine's access point stops admitting this device within seconds (idempotent)" })
  async revokeAccessKey(@Arg("id", () => ID) id: string, @Ctx() ctx: Context): Promise<AccessKey> {
    const key = await ctx.services.access.revoke(currentUser(ctx).id, id);
    await auditOwnAction(ctx, "access_key.revoke", `AccessKey:${key.id}`);
    return shown(key);
  }
}

@Resolver(() => Instance)
export class InstanceAccessResolver {
  @FieldResolver(() => [AccessKey], { description: "Its devices' WireGuard keys (revoked and expired ones too), newest first" })
  async accessKeys(@Root() instance: Instance, @Ctx() ctx: Context): Promise<AccessKey[]> {
    const row = await ctx.services.instances.get(currentUser(ctx).id, instance.id);
    return (await ctx.services.access.list(row)).map(shown);
  }

  @FieldResolver(() => PrivateAccess, { nullable: true, description: "How to reach it: WireGuard endpoint, its tunnel address and ports (null: no open access point)" })
  async privateAccess(@Root() instance: Instance, @Ctx() ctx: Context): Promise<PrivateAccess | null> {
    const row: InstanceRow = await ctx.services.instances.get(currentUser(ctx).id, instance.id);
    return ctx.services.access.privateAccess(row);
  }
}
