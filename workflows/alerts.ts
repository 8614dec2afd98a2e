import { proxyActivities } from "@temporalio/workflow";
import { DELIVERY_REJECTED, type AlertActivities, type DeliverNotificationInput, type DeliverNotificationResult, type DeliveryOutcome } from "./contracts";
import { retryPolicy } from "./policies";

const quick = proxyActivities<AlertActivities>({ startToCloseTimeout: "1 minute", retry: retryPolicy(10) });
const scan = proxyActivities<AlertActivities>({ startToCloseTimeout: "10 minutes", retry: retryPolicy(5) });

/**
 * Delivers one notification (started once per notification: its workflow id is derived from the
 * notification's id): an e-mail unless the user's preferences say no, and a signed POST to each of
 * their webhooks subscribed to its kind, side by side. Each delivery is an activity retried with
 * exponential backoff until it succeeds, is rejected for good (DELIVERY_REJECTED: a 4xx, a refused
 * address) or its total time runs out; every attempt is recorded by the activity itself.
 */
export async function deliverNotification(input: DeliverNotificationInput): Promise<DeliverNotificationResult> {
  const send = proxyActivities<AlertActivities>({
    startToCloseTimeout: input.attemptTimeoutMs,
    scheduleToCloseTimeout: input.retry.totalMs,
    retry: {
      initialInterval: input.retry.initialIntervalMs,
      backoffCoefficient: 2,
      maximumInterval: input.retry.maximumIntervalMs,
      nonRetryableErrorTypes: [DELIVERY_REJECTED],
    },
  });
  const plan = await quick.planNotificationDelivery({ notificationId: input.notificationId });
  const settle = (p: Promise<DeliveryOutcome>): Promise<DeliveryOutcome | "FAILED"> => p.catch(() => "FAILED" as const);
  const [email, ...hooks] = await Promise.all([
    plan.email ? settle(send.emailNotification({ notificationId: input.notificationId })) : Promise.resolve("NOT_SENT" as const),
    ...plan.webhookIds.map((webhookId) => settle(send.postNotificationWebhook({ notificationId: input.notificationId, webhookId }))),
  ]);
  return { email: email!, webhooks: plan.webhookIds.map((webhookId, i) => ({ webhookId, outcome: hooks[i]! })) };
}

/** Scheduled every 5 minutes: start the deliveries of notifications raised while Temporal was unreachable. */
export async function sweepNotificationDeliveries(olderThanMs: number): Promise<number> {
  return scan.startPendingDeliveries({ olderThanMs });
}

/** Scheduled hourly: warn of machines the daily stale-instance clean-up will terminate within `aheadMs`. */
export async function warnTerminatingInstances(stoppedTtlMs: number, aheadMs: number): Promise<number> {
  return scan.warnTerminatingInstances({ stoppedTtlMs, aheadMs });
}
