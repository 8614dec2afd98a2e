import { and, eq, gt, isNull, lt } from "drizzle-orm";
import type { Db } from "../db/client";
import { notifications, type NotificationRow } from "../db/schema";
import type { Config } from "../config";
import type { WorkflowPort } from "../temporal/workflow-port";
import type { DeliverNotificationInput } from "../../workflows/contracts";

/** The workflow id of a notification's delivery: one per notification, so it starts once. */
export const deliveryWorkflowId = (notificationId: string) => `notification-${notificationId}`;

/**
 * Starts a notification's delivery workflow (e-mail, webhooks) and notes that it did. A start that
 * fails (Temporal down) leaves the note empty; the sweep (the worker's schedule) starts those later,
 * so a notification raised during an outage is still delivered.
 */
export class NotificationDelivery {
  private readonly now: () => Date;

  constructor(
    private readonly deps: {
      db: Db;
      workflows: Pick<WorkflowPort, "startNotificationDelivery">;
      config: Pick<Config, "webhooks" | "mail">;
      now?: () => Date;
    },
  ) {
    this.now = deps.now ?? (() => new Date());
  }

  private input(notificationId: string): { args: DeliverNotificationInput; executionTimeoutMs: number } {
    const { webhooks, mail } = this.deps.config;
    const attemptTimeoutMs = Math.max(webhooks.timeoutMs, mail.timeoutMs) + 30_000;
    return { args: { notificationId, retry: webhooks.retry, attemptTimeoutMs }, executionTimeoutMs: webhooks.retry.totalMs + attemptTimeoutMs + 3_600_000 };
  }

  async start(row: Pick<NotificationRow, "id">): Promise<void> {
    const { args, executionTimeoutMs } = this.input(row.id);
    await this.deps.workflows.startNotificationDelivery(args, { workflowId: deliveryWorkflowId(row.id), executionTimeoutMs });
    await this.deps.db.update(notifications).set({ deliveryStartedAt: this.now() }).where(eq(notifications.id, row.id));
  }

  /**
   * Starts the deliveries that were never started: raised more than `olderThanMs` ago (the raise's
   * own start had its chance) and less than the retry window ago (older news is not sent late).
   */
  async startPending(olderThanMs: number, limit = 500): Promise<number> {
    const now = this.now().getTime();
    const rows = await this.deps.db
      .select({ id: notifications.id })
      .from(notifications)
      .where(and(isNull(notifications.deliveryStartedAt), lt(notifications.createdAt, new Date(now - olderThanMs)), gt(notifications.createdAt, new Date(now - this.deps.config.webhooks.retry.totalMs))))
      .limit(limit);
    for (const r of rows) await this.start(r);
    return rows.length;
  }
}
