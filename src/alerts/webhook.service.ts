import { createHash } from "node:crypto";
import { and, count, desc, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { NOTIFICATION_KINDS, notificationDeliveries, webhooks, type NotificationDeliveryRow, type NotificationKind, type NotificationRow, type WebhookRow } from "../db/schema";
import { findOwned, findOwnedOrNull } from "../db/ownership";
import { newId } from "../shared/ids";
import { badInput, quotaExceeded } from "../shared/errors";
import type { SecretBox } from "../shared/secret-box";
import type { Config } from "../config";
import { checkWebhookAddress, newWebhookSecret, parseWebhookUrl, postWebhook, signWebhook, WebhookAddressError, type WebhookResponse } from "./webhook-http";

/** What a webhook receives: the JSON body of every delivery. */
export interface WebhookPayload {
  id: string;
  /** A NotificationKind, or "TEST" for sendTestWebhook. */
  kind: string;
  title: string;
  body: string;
  subject: { type: string; id: string } | null;
  createdAt: string;
}

/** How many deliveries a webhook or notification shows. */
export const DELIVERIES_SHOWN = 50;

export interface WebhookServiceDeps {
  db: Db;
  secrets: SecretBox;
  config: Pick<Config, "webhooks">;
  now?: () => Date;
}

const sealContext = (id: string) => `webhook:${id}`;

/** The delivery id a receiver dedupes on: the same for every retry of one notification to one webhook. */
export function deliveryIdOf(notificationId: string, webhookId: string): string {
  return createHash("sha256").update(`${notificationId}:${webhookId}`).digest("hex").slice(0, 32);
}

export function payloadOf(n: Pick<NotificationRow, "id" | "kind" | "title" | "body" | "subjectType" | "subjectId" | "createdAt">): WebhookPayload {
  return {
    id: n.id,
    kind: n.kind,
    title: n.title,
    body: n.body,
    subject: n.subjectType && n.subjectId ? { type: n.subjectType, id: n.subjectId } : null,
    createdAt: n.createdAt.toISOString(),
  };
}

/**
 * Webhooks (issue 16): a user's http(s) endpoints, each with its own signing secret (returned once
 * at creation, stored sealed), the notification kinds it receives and the log of every delivery.
 */
export class WebhookService {
  private readonly now: () => Date;

  constructor(private readonly deps: WebhookServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  get(userId: string, id: string): Promise<WebhookRow> {
    return findOwned<WebhookRow>(this.deps.db, webhooks, "Webhook", userId, id);
  }

  /** A webhook of the user's, or null (removed). */
  find(userId: string, id: string): Promise<WebhookRow | null> {
    return findOwnedOrNull<WebhookRow>(this.deps.db, webhooks, userId, id);
  }

  list(userId: string): Promise<WebhookRow[]> {
    return this.deps.db.select().from(webhooks).where(eq(webhooks.userId, userId)).orderBy(desc(webhooks.id));
  }

  /** The user's webhooks subscribed to `kind`. */
  async subscribedTo(userId: string, kind: NotificationKind): Promise<WebhookRow[]> {
    return (await this.list(userId)).filter((w) => w.events.includes(kind));
  }

  /** Adds a webhook after checking its URL (form and address); returns it with its secret, the only time the secret is shown. */
  async add(userId: string, input: { url: string; events: NotificationKind[] }): Promise<{ webhook: WebhookRow; secret: string }> {
    let url: URL;
    try {
      url = parseWebhookUrl(input.url);
      await checkWebhookAddress(url, this.deps.config.webhooks.allowPrivateAddresses);
    } catch (err) {
      if (err instanceof WebhookAddressError) throw badInput(err.message, { field: "url", reason: err.reason });
      throw err;
    }
    const events = NOTIFICATION_KINDS.filter((k) => input.events.includes(k));
    if (!events.length) throw badInput("events must name at least one notification kind", { field: "events" });
    const limit = this.deps.config.webhooks.perUser;
    const [{ n }] = (await this.deps.db.select({ n: count() }).from(webhooks).where(eq(webhooks.userId, userId))) as [{ n: number }];
    if (Number(n) >= limit) throw quotaExceeded("WEBHOOKS", `You have ${n} webhooks, the most allowed (${limit}); remove one first`, { limit, used: Number(n) });
    const id = newId();
    const secret = newWebhookSecret();
    const row: WebhookRow = { id, userId, url: url.href, events, secretSealed: this.deps.secrets.seal(secret, sealContext(id)), createdAt: this.now() };
    await this.deps.db.insert(webhooks).values(row);
    return { webhook: row, secret };
  }

  /** Removes a webhook (its delivery log goes with it); pending retries find it gone and stop. */
  async remove(userId: string, id: string): Promise<WebhookRow> {
    const row = await this.get(userId, id);
    await this.deps.db.delete(webhooks).where(and(eq(webhooks.id, row.id), eq(webhooks.userId, userId)));
    return row;
  }

  /** A webhook's latest deliveries, newest first. */
  deliveries(userId: string, webhookId: string, limit = DELIVERIES_SHOWN): Promise<NotificationDeliveryRow[]> {
    return this.deps.db
      .select()
      .from(notificationDeliveries)
      .where(and(eq(notificationDeliveries.userId, userId), eq(notificationDeliveries.webhookId, webhookId)))
      .orderBy(desc(notificationDeliveries.id))
      .limit(Math.max(1, Math.min(limit, DELIVERIES_SHOWN)));
  }

  /** A notification's deliveries (e-mail and webhooks), oldest first. */
  notificationDeliveries(userId: string, notificationId: string): Promise<NotificationDeliveryRow[]> {
    return this.deps.db
      .select()
      .from(notificationDeliveries)
      .where(and(eq(notificationDeliveries.userId, userId), eq(notificationDeliveries.notificationId, notificationId)))
      .orderBy(notificationDeliveries.id)
      .limit(200);
  }

  /** Records one delivery attempt (e-mail or webhook). */
  async record(row: Omit<NotificationDeliveryRow, "id" | "at" | "test"> & { test?: boolean }): Promise<NotificationDeliveryRow> {
    const full: NotificationDeliveryRow = {
      id: newId(),
      at: this.now(),
      test: false,
      ...row,
      target: row.target.slice(0, 2048),
      error: row.error?.slice(0, 1024) ?? null,
      responseExcerpt: row.responseExcerpt?.slice(0, 256) ?? null,
    };
    await this.deps.db.insert(notificationDeliveries).values(full);
    return full;
  }

  /** POSTs a payload to a webhook, signed with its secret (never throws; the response says what happened). */
  async post(webhook: WebhookRow, event: string, deliveryId: string, payload: WebhookPayload): Promise<WebhookResponse> {
    const body = JSON.stringify(payload);
    const timestamp = Math.floor(this.now().getTime() / 1000);
    const secret = this.deps.secrets.open(webhook.secretSealed, sealContext(webhook.id));
    return postWebhook({
      url: webhook.url,
      body,
      timeoutMs: this.deps.config.webhooks.timeoutMs,
      allowPrivate: this.deps.config.webhooks.allowPrivateAddresses,
      headers: {
        "X-ReClo-Signature": signWebhook(secret, timestamp, body),
        "X-ReClo-Timestamp": String(timestamp),
        "X-ReClo-Event": event,
        "X-ReClo-Delivery": deliveryId,
      },
    });
  }

  /** Sends a TEST event now (one attempt, not retried) and records it in the webhook's log. */
  async sendTest(userId: string, id: string): Promise<NotificationDeliveryRow> {
    const webhook = await this.get(userId, id);
    const deliveryId = newId();
    const payload: WebhookPayload = {
      id: deliveryId,
      kind: "TEST",
      title: "Test event from ReClo",
      body: "This is a test delivery: your endpoint received it and can check its signature.",
      subject: null,
      createdAt: this.now().toISOString(),
    };
    const r = await this.post(webhook, "TEST", deliveryId, payload);
    return this.record({
      userId,
      notificationId: null,
      webhookId: webhook.id,
      channel: "WEBHOOK",
      target: webhook.url,
      attempt: 1,
      status: r.httpStatus !== null && r.httpStatus >= 200 && r.httpStatus < 300 ? "DELIVERED" : "REJECTED",
      httpStatus: r.httpStatus,
      error: r.error,
      responseExcerpt: r.excerpt,
      durationMs: r.durationMs,
      test: true,
    });
  }
}
