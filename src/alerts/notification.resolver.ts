import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { auditOwnAction } from "../graphql/audit";
import { Topic, type NotificationAddedEvent } from "../events/topics";
import type { NotificationKind as Kind, WebhookRow } from "../db/schema";
import { Notification, NotificationConnection, NotificationDelivery, NotificationPreferences } from "./notification.type";
import { AddWebhookInput, NotificationPreferencesInput, NotificationsArgs } from "./notification.input";
import { Webhook } from "./webhook.type";

const toWebhook = (row: WebhookRow, signingSecret: string | null = null): Webhook => ({ id: row.id, url: row.url, events: row.events as Webhook["events"], createdAt: row.createdAt, signingSecret });

@Resolver(() => Notification)
export class NotificationResolver {
  @Authorized()
  @Query(() => NotificationConnection, { description: "Your notifications, newest first" })
  notifications(@Args(() => NotificationsArgs) args: NotificationsArgs, @Ctx() ctx: Context) {
    return ctx.services.notifications.list(currentUser(ctx).id, args, args.unreadOnly ?? false);
  }

  @Authorized()
  @Query(() => Notification)
  notification(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.notifications.get(currentUser(ctx).id, id);
  }

  @Authorized()
  @Query(() => Int, { description: "How many of your notifications are unread" })
  unreadNotificationCount(@Ctx() ctx: Context) {
    return ctx.services.notifications.unreadCount(currentUser(ctx).id);
  }

  @Authorized()
  @Mutation(() => Int, { description: "Mark these notifications of yours read (ids that are not yours are ignored); answers how many are unread now" })
  markNotificationsRead(@Arg("ids", () => [ID]) ids: string[], @Ctx() ctx: Context) {
    return ctx.services.notifications.markRead(currentUser(ctx).id, ids);
  }

  @Authorized()
  @Mutation(() => Int, { description: "Mark all your notifications read; answers how many are unread now (0)" })
  markAllNotificationsRead(@Ctx() ctx: Context) {
    return ctx.services.notifications.markAllRead(currentUser(ctx).id);
  }

  @Authorized()
  @Query(() => NotificationPreferences)
  async notificationPreferences(@Ctx() ctx: Context): Promise<NotificationPreferences> {
    return { emailKinds: (await ctx.services.notifications.emailKinds(currentUser(ctx).id)) as NotificationPreferences["emailKinds"] };
  }

  @Authorized()
  @Mutation(() => NotificationPreferences, { description: "Choose which kinds you are e-mailed (the default: every kind but RECOVERY_COMPLETED)" })
  async setNotificationPreferences(@Arg("input", () => NotificationPreferencesInput) input: NotificationPreferencesInput, @Ctx() ctx: Context): Promise<NotificationPreferences> {
    return { emailKinds: (await ctx.services.notifications.setEmailKinds(currentUser(ctx).id, input.emailKinds as Kind[])) as NotificationPreferences["emailKinds"] };
  }

  @Authorized()
  @Subscription(() => Notification, {
    topics: Topic.NOTIFICATION_ADDED,
    // Routed by user id: only this user's notifications are heard.
    topicId: ({ context }: { context: Context }) => currentUser(context).id,
    description: "Each new notification of yours, as it is raised",
  })
  notificationAdded(@Root() event: NotificationAddedEvent, @Ctx() ctx: Context) {
    return ctx.services.notifications.get(currentUser(ctx).id, event.notificationId);
  }

  @FieldResolver(() => [NotificationDelivery], { description: "Every attempt to deliver it (e-mail and webhooks), oldest first" })
  deliveries(@Root() n: Notification, @Ctx() ctx: Context) {
    return ctx.services.webhooks.notificationDeliveries(currentUser(ctx).id, n.id);
  }
}

@Resolver(() => Webhook)
export class WebhookResolver {
  @Authorized()
  @Query(() => [Webhook], { description: "Your webhooks, newest first" })
  async webhooks(@Ctx() ctx: Context): Promise<Webhook[]> {
    return (await ctx.services.webhooks.list(currentUser(ctx).id)).map((w) => toWebhook(w));
  }

  @Authorized()
  @Mutation(() => Webhook, { description: "Add a webhook; its signingSecret is in this response only. The URL must be http(s), without credentials, and reach a public address." })
  async addWebhook(@Arg("input", () => AddWebhookInput) input: AddWebhookInput, @Ctx() ctx: Context): Promise<Webhook> {
    const { webhook, secret } = await ctx.services.webhooks.add(currentUser(ctx).id, { url: input.url, events: input.events as Kind[] });
    return toWebhook(webhook, secret);
  }

  @Authorized()
  @Mutation(() => Webhook, { description: "Remove a webhook (and its delivery log); retries still pending for it stop" })
  async removeWebhook(@Arg("id", () => ID) id: string, @Ctx() ctx: Context): Promise<Webhook> {
    const webhook = await ctx.services.webhooks.remove(currentUser(ctx).id, id);
    await auditOwnAction(ctx, "webhook.remove", `Webhook:${webhook.id}`, { host: new URL(webhook.url).host });
    return toWebhook(webhook);
  }

  @Authorized()
  @Mutation(() => NotificationDelivery, { description: "POST a signed TEST event to the webhook now (one attempt, not retried) and answer how it went; recorded in its deliveries" })
  sendTestWebhook(@Arg("id", () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.services.webhooks.sendTest(currentUser(ctx).id, id);
  }

  @FieldResolver(() => [NotificationDelivery], { description: "Its latest deliveries (at most 50), newest first" })
  deliveries(@Root() w: Webhook, @Ctx() ctx: Context) {
    return ctx.services.webhooks.deliveries(currentUser(ctx).id, w.id);
  }
}
