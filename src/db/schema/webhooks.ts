import { boolean, index, int, json, mysqlEnum, mysqlTable, primaryKey, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ref, ts } from "../columns";
import { notifications, type NotificationKind } from "./notifications";
import { ownerId } from "./owner";

/**
 * A user's webhook (issue 16): an http(s) URL that is POSTed each notification of the kinds it
 * subscribed to, signed with its own secret. The secret is needed to sign (HMAC), so it is stored
 * sealed (src/shared/secret-box.ts, context "webhook:<id>"), shown to the user once at creation.
 */
export const webhooks = mysqlTable(
  "webhooks",
  {
    id: idColumn(),
    userId: ownerId(),
    url: varchar("url", { length: 2048 }).notNull(),
    /** The notification kinds it receives. */
    events: json("events").$type<NotificationKind[]>().notNull(),
    secretSealed: varchar("secret_sealed", { length: 255 }).notNull(),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [index("webhooks_user_idx").on(t.userId, t.id)],
);
export type WebhookRow = typeof webhooks.$inferSelect;

export const DELIVERY_CHANNELS = ["EMAIL", "WEBHOOK"] as const;
/** DELIVERED: accepted (SMTP relay, or a 2xx); FAILED: retried later (5xx, 408, 429, timeout, network); REJECTED: not retried (4xx, refused address). */
export const DELIVERY_STATUSES = ["DELIVERED", "FAILED", "REJECTED"] as const;

/**
 * Every attempt to deliver a notification (or a webhook's test event) by e-mail or webhook: what
 * the user reads to see whether their endpoint works. Only a short excerpt of a response is kept.
 */
export const notificationDeliveries = mysqlTable(
  "notification_deliveries",
  {
    id: idColumn(),
    userId: ownerId(),
    /** Null for a webhook's test event. */
    notificationId: ref("notification_id").references(() => notifications.id, { onDelete: "cascade" }),
    /** The webhook (WEBHOOK channel); its deliveries go with it. */
    webhookId: ref("webhook_id").references(() => webhooks.id, { onDelete: "cascade" }),
    channel: mysqlEnum("channel", DELIVERY_CHANNELS).notNull(),
    /** The e-mail address or the webhook URL, as it was at the attempt. */
    target: varchar("target", { length: 2048 }).notNull(),
    /** 1 for the first try; Temporal's attempt number of the activity. */
    attempt: int("attempt", { unsigned: true }).notNull(),
    status: mysqlEnum("status", DELIVERY_STATUSES).notNull(),
    httpStatus: int("http_status", { unsigned: true }),
    error: varchar("error", { length: 1024 }),
    /** At most 256 characters of the answer's body. */
    responseExcerpt: varchar("response_excerpt", { length: 256 }),
    durationMs: int("duration_ms", { unsigned: true }).notNull(),
    test: boolean("test").notNull().default(false),
    at: ts("at").notNull(),
  },
  (t) => [
    index("notification_deliveries_user_idx").on(t.userId, t.id),
    index("notification_deliveries_notification_idx").on(t.notificationId, t.id),
    index("notification_deliveries_webhook_idx").on(t.webhookId, t.id),
  ],
);
export type NotificationDeliveryRow = typeof notificationDeliveries.$inferSelect;

/** Which kinds a user is e-mailed (no row: the defaults, DEFAULT_EMAIL_KINDS in src/alerts). */
export const notificationPreferences = mysqlTable(
  "notification_preferences",
  {
    userId: ownerId(),
    emailKinds: json("email_kinds").$type<NotificationKind[]>().notNull(),
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId] })],
);
export type NotificationPreferencesRow = typeof notificationPreferences.$inferSelect;
