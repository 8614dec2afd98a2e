import { ApplicationFailure, Context } from "@temporalio/activity";
import { DELIVERY_REJECTED, type AlertActivities, type DeliveryOutcome, type NotificationDeliveryPlan } from "../../workflows/contracts";
import type { NotificationRow } from "../db/schema";
import type { InstanceService } from "../instances/instance.service";
import { MailError, type Mailer } from "../mail/mailer";
import type { Logger } from "../logger";
import type { NotificationService } from "./notification.service";
import { deliveryIdOf, payloadOf, type WebhookService } from "./webhook.service";
import { isRetryable } from "./webhook-http";
import type { NotificationDelivery } from "./delivery.service";

export interface AlertActivityDeps {
  notifications: Pick<NotificationService, "find" | "emailKinds" | "emailAddressOf" | "raise">;
  webhooks: Pick<WebhookService, "subscribedTo" | "find" | "post" | "record">;
  mailer: Mailer;
  instances: Pick<InstanceService, "stoppedBefore">;
  /** Absent on a worker without a Temporal client (then nothing is swept). */
  delivery?: Pick<NotificationDelivery, "startPending">;
  /** Where links in e-mails point (config.mail.linkBase). */
  linkBase: string;
  logger?: Logger;
}

/** The console page of a notification. */
export const consoleLink = (linkBase: string, n: Pick<NotificationRow, "id">) => `${linkBase}/#/notifications?id=${encodeURIComponent(n.id)}`;

/** The e-mail of a notification: its title as the subject, its body, and the link to the console. */
export function emailOf(n: NotificationRow, linkBase: string): { subject: string; text: string } {
  return {
    subject: `[ReClo] ${n.title}`,
    text: `${n.body}\n\nSee it in the ReClo console: ${consoleLink(linkBase, n)}\n\nYou receive this e-mail because your notification preferences include ${n.kind}; change them at ${linkBase}/#/settings/notifications\n`,
  };
}

const attempt = () => Context.current().info.attempt;

export function createAlertActivities(deps: AlertActivityDeps): AlertActivities {
  return {
    async planNotificationDelivery({ notificationId }): Promise<NotificationDeliveryPlan> {
      const n = await deps.notifications.find(notificationId);
      if (!n) return { email: false, webhookIds: [] };
      const [kinds, hooks] = await Promise.all([deps.notifications.emailKinds(n.userId), deps.webhooks.subscribedTo(n.userId, n.kind)]);
      return { email: kinds.includes(n.kind), webhookIds: hooks.map((w) => w.id) };
    },

    async emailNotification({ notificationId }): Promise<DeliveryOutcome> {
      const n = await deps.notifications.find(notificationId);
      if (!n) return "SKIPPED";
      const to = await deps.notifications.emailAddressOf(n.userId);
      if (!to) return "SKIPPED";
      const started = performance.now();
      const { subject, text } = emailOf(n, deps.linkBase);
      try {
        await deps.mailer.send({ to, subject, text, headers: { "X-ReClo-Notification": n.id, "X-ReClo-Event": n.kind } });
      } catch (err) {
        const permanent = err instanceof MailError && err.permanent;
        const message = err instanceof Error ? err.message : String(err);
        await deps.webhooks.record({ userId: n.userId, notificationId: n.id, webhookId: null, channel: "EMAIL", target: to, attempt: attempt(), status: permanent ? "REJECTED" : "FAILED", httpStatus: null, error: message, responseExcerpt: null, durationMs: Math.round(performance.now() - started) });
        if (permanent) throw ApplicationFailure.nonRetryable(message, DELIVERY_REJECTED);
        throw err;
      }
      await deps.webhooks.record({ userId: n.userId, notificationId: n.id, webhookId: null, channel: "EMAIL", target: to, attempt: attempt(), status: "DELIVERED", httpStatus: null, error: null, responseExcerpt: null, durationMs: Math.round(performance.now() - started) });
      return "DELIVERED";
    },

    async postNotificationWebhook({ notificationId, webhookId }): Promise<DeliveryOutcome> {
      const n = await deps.notifications.find(notificationId);
      if (!n) return "SKIPPED";
      // Removed (or no longer subscribed) since: nothing more is sent.
      const webhook = await deps.webhooks.find(n.userId, webhookId);
      if (!webhook || !webhook.events.includes(n.kind)) return "SKIPPED";
      const r = await deps.webhooks.post(webhook, n.kind, deliveryIdOf(n.id, webhook.id), payloadOf(n));
      const delivered = r.httpStatus !== null && r.httpStatus >= 200 && r.httpStatus < 300;
      const retry = !delivered && isRetryable(r);
      await deps.webhooks.record({
        userId: n.userId,
        notificationId: n.id,
        webhookId: webhook.id,
        channel: "WEBHOOK",
        target: webhook.url,
        attempt: attempt(),
        status: delivered ? "DELIVERED" : retry ? "FAILED" : "REJECTED",
        httpStatus: r.httpStatus,
        error: r.error,
        responseExcerpt: r.excerpt,
        durationMs: r.durationMs,
      });
      if (delivered) return "DELIVERED";
      const message = `webhook ${webhook.url}: ${r.error ?? "failed"}`;
      if (!retry) throw ApplicationFailure.nonRetryable(message, DELIVERY_REJECTED);
      throw ApplicationFailure.retryable(message, "DELIVERY_FAILED");
    },

    async startPendingDeliveries({ olderThanMs }): Promise<number> {
      const n = (await deps.delivery?.startPending(olderThanMs)) ?? 0;
      if (n) deps.logger?.info({ started: n }, "started notification deliveries that had not started");
      return n;
    },

    async warnTerminatingInstances({ stoppedTtlMs, aheadMs }): Promise<number> {
      const now = Date.now();
      const soon = await deps.instances.stoppedBefore(new Date(now - stoppedTtlMs + aheadMs));
      let raised = 0;
      for (const row of soon) {
        if (!row.lastStoppedAt) continue;
        const at = new Date(row.lastStoppedAt.getTime() + stoppedTtlMs);
        const days = Math.round(stoppedTtlMs / 86_400_000);
        const { created } = await deps.notifications.raise(row.userId, {
          kind: "INSTANCE_TERMINATING",
          title: `Machine ${row.name} will be terminated after ${at.toISOString().slice(0, 16).replace("T", " ")} UTC`,
          body:
            `${row.name} has been stopped since ${row.lastStoppedAt.toISOString()}. Machines stopped for ${days} days are terminated by the daily clean-up, ` +
            `so it will be terminated at the first clean-up after ${at.toISOString()}, and its disk with it. Start it to keep it, or terminate it yourself when you no longer need it.`,
          subjectType: "INSTANCE",
          subjectId: row.id,
          dedupeKey: `instance-terminating:${row.id}:${at.toISOString()}`,
        });
        if (created) raised++;
      }
      if (raised) deps.logger?.info({ raised }, "warned of machines about to be terminated");
      return raised;
    },
  };
}
