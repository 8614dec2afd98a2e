import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { and, eq } from "drizzle-orm";
import { startStack, signUp, uniqueName, type TestStack, type TestUser } from "../helpers/stack";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { ensureSchedules, productSchedules, removeSchedule } from "../../src/temporal/schedules";
import { backups, notifications, sources } from "../../src/db/schema";
import { AddWebhookDocument, NotificationsDocument, SetBackupScheduleDocument } from "../../src/client/generated/graphql";
import { verifyWebhookSignature } from "../../src/alerts/webhook-http";
import { clearMailsTo, linksIn, mailsTo, waitForMail } from "../helpers/mailpit";
import { Receiver } from "../helpers/webhook-receiver";
import { waitFor } from "../helpers/wait";

/**
 * Issue 16's promise end to end, with nothing run by hand: the product's own Temporal Schedule runs
 * the missed-backup detector every few seconds; a source whose daily slot passed with no backup
 * gets exactly one BACKUP_MISSED, e-mailed (read back from mailpit) and POSTed to the user's
 * webhook with a signature that checks, however many times the detector runs afterwards.
 */
describe("a missed backup reaches the customer by e-mail and a signed webhook, once", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let alice: TestUser;
  const receiver = new Receiver();
  const taskQueue = `test-missed-${process.pid}-${Date.now()}`;
  const prefix = `test-missed-${process.pid}-${Date.now()}`;
  const scheduleId = `${prefix}-detect-missed-backups`;

  beforeAll(async () => {
    await receiver.start();
    stack = await startStack({ TEMPORAL_TASK_QUEUE: taskQueue });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    alice = await signUp(stack);
  });
  afterAll(async () => {
    await removeSchedule(stack.rt.temporal.client, scheduleId).catch(() => false);
    await worker?.shutdown();
    await stack?.stop();
    await receiver.stop();
  });

  it("the scheduled detector raises it once; one e-mail and one signed POST arrive, and later runs add nothing", async () => {
    await clearMailsTo(alice.email);
    const source = uniqueName("office");
    const { addWebhook: hook } = await alice.client.request(AddWebhookDocument, { input: { url: receiver.script("/missed", [204]), events: ["BACKUP_MISSED"] } });

    // The source's last backup and its schedule (daily 00:00 UTC, 1 minute's grace) date from three
    // days ago, and the agent was last seen two days ago: today's slot (and two before it) passed unseen.
    const b = await stack.rt.services.backups.create(alice.id, { sourceName: source, imageSize: 1 << 20, kind: "FULL" as never });
    const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000);
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: threeDaysAgo, createdAt: threeDaysAgo }).where(eq(backups.id, b.id));
    await alice.client.request(SetBackupScheduleDocument, { input: { sourceName: source, fullEvery: "sun", incrementalAt: "00:00", timezone: "UTC", graceMinutes: 1 } });
    await stack.rt.database.db
      .update(sources)
      .set({ scheduleSetAt: threeDaysAgo, lastSeenAt: new Date(Date.now() - 2 * 86_400_000) })
      .where(and(eq(sources.userId, alice.id), eq(sources.name, source)));

    // The product's schedule, as the worker registers it at start, with a 2 s interval.
    const spec = productSchedules({ prefix, maintenanceIntervalMs: 3_600_000, instanceStoppedTtlMs: 86_400_000, missedBackupCheckIntervalMs: 2_000 }).filter((s) => s.id === scheduleId);
    expect(spec).toHaveLength(1);
    const startedAt = Date.now();
    await ensureSchedules(stack.rt.temporal.client, taskQueue, spec);

    const mail = await waitForMail(alice.email, new RegExp(`No backup of ${source} started since`), 60_000);
    console.log(`missed backup: e-mail in mailpit ${Date.now() - startedAt} ms after the schedule was created`);
    expect(mail.Text).toContain("the agent was last seen");
    const [post] = await waitFor("the webhook POST", () => receiver.to("/missed").length > 0 && receiver.to("/missed"), 30_000);
    expect(verifyWebhookSignature(hook.signingSecret!, String(post!.headers["x-reclo-timestamp"]), post!.body, String(post!.headers["x-reclo-signature"]))).toBe(true);
    expect(JSON.parse(post!.body)).toMatchObject({ kind: "BACKUP_MISSED", subject: { type: "SOURCE", id: source } });
    const { notifications: list } = await alice.client.request(NotificationsDocument, { unreadOnly: true });
    const listed = list.edges.map((e) => e.node).filter((n) => n.kind === "BACKUP_MISSED");
    expect(listed).toHaveLength(1);
    expect(linksIn(mail)).toContain(`${stack.config.mail.linkBase}/#/notifications?id=${listed[0]!.id}`);

    // Three more runs of the schedule after the first raise: still one notification, one mail, one POST.
    const handle = stack.rt.temporal.client.schedule.getHandle(scheduleId);
    const runsSoFar = (await handle.describe()).info.recentActions.length;
    await waitFor("three more detector runs", async () => (await handle.describe()).info.recentActions.length >= runsSoFar + 3, 60_000, 500);
    const recent = (await handle.describe()).info.recentActions.slice(-1)[0]!;
    await stack.rt.temporal.client.workflow.getHandle(recent.action.workflow.workflowId).result();
    const rows = await stack.rt.database.db.select().from(notifications).where(and(eq(notifications.userId, alice.id), eq(notifications.kind, "BACKUP_MISSED")));
    expect(rows.filter((r) => r.subjectId === source)).toHaveLength(1);
    expect((await mailsTo(alice.email)).filter((m) => m.Subject.includes(`No backup of ${source}`))).toHaveLength(1);
    expect(receiver.to("/missed")).toHaveLength(1);
  });
});
