import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { and, eq } from "drizzle-orm";
import { startStack, signUp, errorOf, type TestStack, type TestUser } from "../helpers/stack";
import { startWorker, type WorkerHandle } from "../../src/temporal/worker";
import { activitiesFor } from "../../src/worker-activities";
import { backups, instances, notifications, verifications, type NotificationKind } from "../../src/db/schema";
import {
  AddWebhookDocument,
  MarkAllNotificationsReadDocument,
  MarkNotificationsReadDocument,
  NotificationAddedDocument,
  NotificationDeliveriesDocument,
  NotificationPreferencesDocument,
  NotificationsDocument,
  RemoveWebhookDocument,
  SendTestWebhookDocument,
  SetNotificationPreferencesDocument,
  WebhooksDocument,
} from "../../src/client/generated/graphql";
import { clearMailsTo, linksIn, mailsTo, waitForMail } from "../helpers/mailpit";
import { waitFor } from "../helpers/wait";
import { openSubscription } from "../helpers/ws";
import { isPrivateAddress, postWebhook, verifyWebhookSignature } from "../../src/alerts/webhook-http";
import { newId } from "../../src/shared/ids";
import type { DeliverNotificationResult } from "../../workflows/contracts";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import { killChildren, spawnCli } from "../helpers/cli";
import { cliSourceEnv } from "../helpers/processes";
import { Receiver } from "../helpers/webhook-receiver";

describe("notifications: list, e-mail and signed webhooks delivered by Temporal (issue 16)", () => {
  let stack: TestStack;
  let worker: WorkerHandle;
  let alice: TestUser;
  let mallory: TestUser;
  const receiver = new Receiver();
  const taskQueue = `test-alerts-${process.pid}-${Date.now()}`;
  let n = 0;

  const raise = (user: TestUser, kind: NotificationKind, title = `Something happened ${++n}`) =>
    stack.rt.services.notifications.raise(user.id, { kind, title, body: `What was observed (${n}) and what to do.`, subjectType: "SOURCE", subjectId: "office", dedupeKey: `test:${n}:${Date.now()}` });
  const deliveryResult = (notificationId: string) => stack.rt.temporal.client.workflow.getHandle(`notification-${notificationId}`).result() as Promise<DeliverNotificationResult>;
  const deliveriesOf = async (user: TestUser, id: string) => (await user.client.request(NotificationDeliveriesDocument, { id })).notification.deliveries;
  const addWebhook = async (user: TestUser, url: string, events: NotificationKind[]) => (await user.client.request(AddWebhookDocument, { input: { url, events } })).addWebhook;

  beforeAll(async () => {
    await receiver.start();
    stack = await startStack({
      TEMPORAL_TASK_QUEUE: taskQueue,
      WEBHOOK_RETRY_INITIAL: "200ms",
      WEBHOOK_RETRY_MAX_INTERVAL: "400ms",
      WEBHOOK_RETRY_FOR: "30s",
      WEBHOOK_TIMEOUT: "5s",
      WEBHOOK_LIMIT: "3",
    });
    worker = await startWorker({ config: stack.config.temporal, activities: activitiesFor(stack.rt), logger: stack.rt.logger, workflowBundle: { codePath: inject("workflowBundlePath") } });
    [alice, mallory] = await Promise.all([signUp(stack), signUp(stack)]);
  });
  afterAll(async () => {
    await worker?.shutdown();
    await stack?.stop();
    await receiver.stop();
  });

  it("a raised notification is listed, e-mailed (subject, body, console link) and POSTed to a subscribed webhook whose signature checks", async () => {
    await clearMailsTo(alice.email);
    const hook = await addWebhook(alice, receiver.script("/alice", [204]), ["BACKUP_MISSED", "VERIFICATION_FAILED"]);
    expect(hook.signingSecret).toMatch(/^whsec_/);
    const raisedAt = performance.now();
    const { notification } = await raise(alice, "BACKUP_MISSED", "No backup of office since 02:00");
    const posted = waitFor("the webhook POST", () => receiver.to("/alice").length > 0, 20_000, 20).then(() => performance.now() - raisedAt);

    const mail = await waitForMail(alice.email, /No backup of office since 02:00/);
    console.log(`notification delivery: webhook POST ${Math.round(await posted)} ms, e-mail in mailpit ${Math.round(performance.now() - raisedAt)} ms after raise()`);
    expect(mail.Subject).toBe("[ReClo] No backup of office since 02:00");
    expect(mail.Text).toContain(notification.body);
    expect(linksIn(mail)).toContain(`${stack.config.mail.linkBase}/#/notifications?id=${notification.id}`);

    const [post] = await waitFor("the webhook POST", () => receiver.to("/alice").length > 0 && receiver.to("/alice"), 20_000);
    const ts = String(post!.headers["x-reclo-timestamp"]);
    expect(verifyWebhookSignature(hook.signingSecret!, ts, post!.body, String(post!.headers["x-reclo-signature"]))).toBe(true);
    expect(verifyWebhookSignature("whsec_wrong", ts, post!.body, String(post!.headers["x-reclo-signature"]))).toBe(false);
    expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(60);
    expect(post!.headers["x-reclo-event"]).toBe("BACKUP_MISSED");
    expect(post!.headers["x-reclo-delivery"]).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.parse(post!.body)).toEqual({
      id: notification.id,
      kind: "BACKUP_MISSED",
      title: "No backup of office since 02:00",
      body: notification.body,
      subject: { type: "SOURCE", id: "office" },
      createdAt: notification.createdAt.toISOString(),
    });

    expect(await deliveryResult(notification.id)).toEqual({ email: "DELIVERED", webhooks: [{ webhookId: hook.id, outcome: "DELIVERED" }] });
    const deliveries = await deliveriesOf(alice, notification.id);
    expect(deliveries.map((d) => [d.channel, d.status, d.attempt]).sort()).toEqual([
      ["EMAIL", "DELIVERED", 1],
      ["WEBHOOK", "DELIVERED", 1],
    ]);
    expect(deliveries.find((d) => d.channel === "WEBHOOK")).toMatchObject({ target: `${receiver.url}/alice`, httpStatus: 204, webhookId: hook.id });
    expect(deliveries.find((d) => d.channel === "EMAIL")).toMatchObject({ target: alice.email, httpStatus: null });

    // Listed, unread, then read.
    const list = await alice.client.request(NotificationsDocument, { unreadOnly: true });
    expect(list.notifications.edges.map((e) => e.node.id)).toContain(notification.id);
    expect(list.unreadNotificationCount).toBeGreaterThanOrEqual(1);
    const unread = (await alice.client.request(MarkNotificationsReadDocument, { ids: [notification.id] })).markNotificationsRead;
    expect(unread).toBe(list.unreadNotificationCount - 1);
    const after = await alice.client.request(NotificationsDocument, { unreadOnly: true });
    expect(after.notifications.edges.map((e) => e.node.id)).not.toContain(notification.id);
    const all = await alice.client.request(NotificationsDocument, {});
    expect(all.notifications.edges.find((e) => e.node.id === notification.id)?.node.readAt).toBeTruthy();
  });

  it("a webhook that fails twice (503) and then answers 200 is retried with backoff; every attempt is recorded with the same delivery id", async () => {
    const hook = await addWebhook(alice, receiver.script("/flaky", [503, 503, 200]), ["RECOVERY_FAILED"]);
    const { notification } = await raise(alice, "RECOVERY_FAILED");
    const result = await deliveryResult(notification.id);
    expect(result.webhooks).toEqual([{ webhookId: hook.id, outcome: "DELIVERED" }]);
    const attempts = (await deliveriesOf(alice, notification.id)).filter((d) => d.channel === "WEBHOOK");
    expect(attempts.map((d) => [d.attempt, d.status, d.httpStatus])).toEqual([
      [1, "FAILED", 503],
      [2, "FAILED", 503],
      [3, "DELIVERED", 200],
    ]);
    expect(attempts[0]!.responseExcerpt).toBe("status 503 from the test receiver");
    const posts = receiver.to("/flaky");
    expect(posts).toHaveLength(3);
    expect(new Set(posts.map((p) => p.headers["x-reclo-delivery"])).size).toBe(1);
    // Each attempt is signed anew (its own timestamp), and each signature checks.
    expect(posts.every((p) => verifyWebhookSignature(hook.signingSecret!, String(p.headers["x-reclo-timestamp"]), p.body, String(p.headers["x-reclo-signature"])))).toBe(true);
    // Backoff: the third attempt came at least initial + 2 × initial after the first.
    const at = attempts.map((d) => Date.parse(d.at));
    expect(at[2]! - at[0]!).toBeGreaterThanOrEqual(500);
    await alice.client.request(RemoveWebhookDocument, { id: hook.id });
  });

  it("a 410 Gone is not retried: one attempt, REJECTED", async () => {
    const hook = await addWebhook(alice, receiver.script("/gone", [410, 200]), ["UPLOAD_FAILED"]);
    const { notification } = await raise(alice, "UPLOAD_FAILED");
    const result = await deliveryResult(notification.id);
    expect(result.webhooks).toEqual([{ webhookId: hook.id, outcome: "FAILED" }]);
    const attempts = (await deliveriesOf(alice, notification.id)).filter((d) => d.channel === "WEBHOOK");
    expect(attempts.map((d) => [d.attempt, d.status, d.httpStatus])).toEqual([[1, "REJECTED", 410]]);
    expect(receiver.to("/gone")).toHaveLength(1);
    const { webhooks } = await alice.client.request(WebhooksDocument, {});
    expect(webhooks.find((w) => w.id === hook.id)!.deliveries[0]).toMatchObject({ status: "REJECTED", httpStatus: 410, error: "HTTP 410 Gone" });
    await alice.client.request(RemoveWebhookDocument, { id: hook.id });
  });

  it("sendTestWebhook POSTs a signed TEST event now and records it; webhooks per user are limited", async () => {
    const hook = await addWebhook(alice, receiver.script("/test-event", [200]), ["INSTANCE_TERMINATING"]);
    const { sendTestWebhook: d } = await alice.client.request(SendTestWebhookDocument, { id: hook.id });
    expect(d).toMatchObject({ channel: "WEBHOOK", status: "DELIVERED", httpStatus: 200, test: true, attempt: 1, notificationId: null });
    const [post] = receiver.to("/test-event");
    expect(post!.headers["x-reclo-event"]).toBe("TEST");
    expect(verifyWebhookSignature(hook.signingSecret!, String(post!.headers["x-reclo-timestamp"]), post!.body, String(post!.headers["x-reclo-signature"]))).toBe(true);
    // The secret is shown once: never in the list.
    const listed = await alice.client.request(WebhooksDocument, {});
    expect(JSON.stringify(listed)).not.toContain(hook.signingSecret!);
    // WEBHOOK_LIMIT=3: alice holds the first test's webhook and this one.
    await addWebhook(alice, `${receiver.url}/third`, ["BACKUP_MISSED"]);
    const err = await errorOf(addWebhook(alice, `${receiver.url}/fourth`, ["BACKUP_MISSED"]));
    expect(err.code).toBe("QUOTA_EXCEEDED");
    expect(err.extensions).toMatchObject({ quota: "WEBHOOKS", limit: 3 });
    await alice.client.request(RemoveWebhookDocument, { id: hook.id });
  });

  it("preferences without a kind stop its e-mail; the webhook still gets it; RECOVERY_COMPLETED is not e-mailed by default", async () => {
    const user = await signUp(stack);
    await clearMailsTo(user.email);
    expect((await user.client.request(NotificationPreferencesDocument, {})).notificationPreferences.emailKinds).not.toContain("RECOVERY_COMPLETED");
    const hook = await addWebhook(user, receiver.script(`/prefs-${user.id}`, [200]), ["BACKUP_MISSED", "RECOVERY_COMPLETED"]);
    const done = await raise(user, "RECOVERY_COMPLETED");
    expect(await deliveryResult(done.notification.id)).toEqual({ email: "NOT_SENT", webhooks: [{ webhookId: hook.id, outcome: "DELIVERED" }] });
    const set = await user.client.request(SetNotificationPreferencesDocument, { input: { emailKinds: ["VERIFICATION_FAILED"] } });
    // DELETION_REQUESTED is always e-mailed (issue 18): a stolen session must not silence it.
    expect(set.setNotificationPreferences.emailKinds).toEqual(["VERIFICATION_FAILED", "DELETION_REQUESTED"]);
    const missed = await raise(user, "BACKUP_MISSED");
    expect(await deliveryResult(missed.notification.id)).toEqual({ email: "NOT_SENT", webhooks: [{ webhookId: hook.id, outcome: "DELIVERED" }] });
    expect(receiver.to(`/prefs-${user.id}`)).toHaveLength(2);
    // A kind still chosen is e-mailed (the mail arrives: the address works, the preference is what held the others back).
    const failed = await raise(user, "VERIFICATION_FAILED", "Restore point failed to boot");
    await waitForMail(user.email, /Restore point failed to boot/);
    expect((await deliveryResult(failed.notification.id)).email).toBe("DELIVERED");
    expect((await mailsTo(user.email)).map((m) => m.Subject)).toEqual(["[ReClo] Restore point failed to boot"]);
  });

  it("notificationAdded: a subscriber hears of each new notification of theirs, never another user's", async () => {
    const sub = openSubscription(alice.client.withToken(alice.token), NotificationAddedDocument);
    try {
      await sub.connected;
      // The server subscribes after the socket is acknowledged: raise until the first one is heard.
      const raised: string[] = [];
      await waitFor(
        "a notificationAdded event",
        async () => {
          await raise(mallory, "BACKUP_MISSED"); // never heard by alice
          raised.push((await raise(alice, "BACKUP_MISSED")).notification.id);
          return sub.results.length > 0;
        },
        20_000,
        300,
      );
      const heard = sub.results.map((r) => r.data!.notificationAdded.id);
      expect(heard.every((id) => raised.includes(id))).toBe(true);
      const next = await raise(alice, "UPLOAD_ABANDONED", "Upload abandoned");
      const all = await sub.waitFor(heard.length + 1, 10_000);
      expect(all.at(-1)!.data!.notificationAdded).toMatchObject({ id: next.notification.id, kind: "UPLOAD_ABANDONED", title: "Upload abandoned" });
    } finally {
      await sub.dispose();
    }
  });

  it("webhooks and notifications are their owner's: another user gets NOT_FOUND, and cannot mark them read", async () => {
    // Subscribed to a kind not raised here, so the only POST /owned could get is Mallory's test event.
    const hook = await addWebhook(alice, `${receiver.url}/owned`, ["INSTANCE_TERMINATING"]);
    const { notification } = await raise(alice, "BACKUP_MISSED");
    for (const call of [
      () => mallory.client.request(RemoveWebhookDocument, { id: hook.id }),
      () => mallory.client.request(SendTestWebhookDocument, { id: hook.id }),
      () => mallory.client.request(NotificationDeliveriesDocument, { id: notification.id }),
    ])
      expect((await errorOf(call())).code).toBe("NOT_FOUND");
    await mallory.client.request(MarkNotificationsReadDocument, { ids: [notification.id] });
    await mallory.client.request(MarkAllNotificationsReadDocument, {});
    const [row] = await stack.rt.database.db.select().from(notifications).where(eq(notifications.id, notification.id));
    expect(row!.readAt).toBeNull();
    expect((await mallory.client.request(WebhooksDocument, {})).webhooks.map((w) => w.id)).not.toContain(hook.id);
    expect((await mallory.client.request(NotificationsDocument, {})).notifications.edges.map((e) => e.node.id)).not.toContain(notification.id);
    expect(receiver.to("/owned")).toHaveLength(0);
    await alice.client.request(RemoveWebhookDocument, { id: hook.id });
    expect((await alice.client.request(MarkAllNotificationsReadDocument, {})).markAllNotificationsRead).toBe(0);
  });

  it("a notification whose delivery could not start (Temporal down when it was raised) is delivered by the sweep, once", async () => {
    const user = await signUp(stack);
    const hook = await addWebhook(user, receiver.script(`/sweep-${user.id}`, [200]), ["BACKUP_MISSED"]);
    // Raised normally: its start is noted.
    const raised = await raise(user, "BACKUP_MISSED");
    await deliveryResult(raised.notification.id);
    const [noted] = await stack.rt.database.db.select().from(notifications).where(eq(notifications.id, raised.notification.id));
    expect(noted!.deliveryStartedAt).toBeInstanceOf(Date);
    // The row a raise leaves when its listener could not reach Temporal: recorded, never started.
    const missed = { id: newId(), userId: user.id, kind: "BACKUP_MISSED" as const, title: "Raised during an outage", body: "b", subjectType: null, subjectId: null, dedupeKey: `outage:${newId()}`, createdAt: new Date(Date.now() - 10_000), readAt: null, deliveryStartedAt: null };
    await stack.rt.database.db.insert(notifications).values(missed);
    // Raised 10 s ago; the sweep takes those older than 5 s (and younger than WEBHOOK_RETRY_FOR, 30 s here).
    const sweep = () => stack.rt.temporal.client.workflow.execute("sweepNotificationDeliveries", { taskQueue, workflowId: `${taskQueue}-sweep-${newId()}`, args: [5_000] }) as Promise<number>;
    expect(await sweep()).toBeGreaterThanOrEqual(1);
    expect(await deliveryResult(missed.id)).toEqual({ email: "DELIVERED", webhooks: [{ webhookId: hook.id, outcome: "DELIVERED" }] });
    await sweep();
    const posts = receiver.to(`/sweep-${user.id}`).map((p) => (JSON.parse(p.body) as { id: string }).id);
    expect(posts.filter((id) => id === missed.id)).toHaveLength(1);
    expect(posts.filter((id) => id === raised.notification.id)).toHaveLength(1);
  });

  it("VERIFICATION_FAILED, RECOVERY_FAILED and RECOVERY_COMPLETED are raised once, where the state is reached", async () => {
    const user = await signUp(stack);
    const b = await stack.rt.services.backups.create(user.id, { sourceName: "fileserver", imageSize: 1 << 20, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, b.id));
    const verificationId = newId();
    const now = new Date();
    await stack.rt.database.db.insert(verifications).values({ id: verificationId, userId: user.id, backupId: b.id, status: "RUNNING", workflowId: `verify-${verificationId}`, createdAt: now, updatedAt: now });
    // The finishing write, then a retried one (it finds the verification finished).
    await stack.rt.services.verifications.update(verificationId, { status: "FAILED", failureReason: "kernel panic on the console", checkedAt: now });
    await stack.rt.services.verifications.update(verificationId, { status: "FAILED", failureReason: "kernel panic on the console", checkedAt: now });
    const failedRecovery = await stack.rt.services.recoveries.create(user.id, { backupId: b.id, target: "LOCAL" });
    const completedRecovery = await stack.rt.services.recoveries.create(user.id, { backupId: b.id, target: "LOCAL" });
    await Promise.all([
      stack.rt.services.recoveryProgress.finish(failedRecovery.id, "FAILED", { failureReason: "IMPORT_FAILED", message: "the image did not import" }),
      stack.rt.services.recoveryProgress.finish(failedRecovery.id, "FAILED", { failureReason: "IMPORT_FAILED", message: "the image did not import" }),
    ]);
    await stack.rt.services.recoveryProgress.finish(completedRecovery.id, "COMPLETED", { message: "running" });
    await stack.rt.services.recoveryProgress.finish(completedRecovery.id, "COMPLETED", { message: "running" });
    const rows = await stack.rt.database.db.select().from(notifications).where(eq(notifications.userId, user.id));
    expect(rows.map((r) => [r.kind, r.subjectId]).sort()).toEqual(
      [
        ["RECOVERY_COMPLETED", completedRecovery.id],
        ["RECOVERY_FAILED", failedRecovery.id],
        ["VERIFICATION_FAILED", verificationId],
      ].sort(),
    );
    const vf = rows.find((r) => r.kind === "VERIFICATION_FAILED")!;
    expect(vf.title).toBe("A restore point of fileserver failed its boot verification");
    expect(vf.body).toContain("kernel panic on the console");
    expect(rows.find((r) => r.kind === "RECOVERY_FAILED")!.body).toContain("the image did not import");
  });

  it("INSTANCE_TERMINATING: the hourly detection warns once per machine and termination date, only within 2 days of it", async () => {
    const user = await signUp(stack);
    const b = await stack.rt.services.backups.create(user.id, { sourceName: "mail", imageSize: 1 << 20, kind: "FULL" as never });
    await stack.rt.database.db.update(backups).set({ status: "COMPLETED", completedAt: new Date() }).where(eq(backups.id, b.id));
    const recovery = await stack.rt.services.recoveries.create(user.id, { backupId: b.id, target: "LOCAL" });
    const ttl = stack.config.recovery.instanceStoppedTtlMs;
    const record = async (name: string, stoppedAgoMs: number) => {
      const row = await stack.rt.services.instances.record(user.id, { recoveryId: recovery.id, provider: "LOCAL", providerId: `${name}-${user.id}`, name, state: "STOPPED" });
      await stack.rt.database.db.update(instances).set({ lastStoppedAt: new Date(Date.now() - stoppedAgoMs) }).where(eq(instances.id, row.id));
      return row;
    };
    const soon = await record("soon", ttl - 86_400_000); // terminated in about a day
    const later = await record("later", ttl - 5 * 86_400_000); // in five days: not yet
    const run = () => stack.rt.temporal.client.workflow.execute("warnTerminatingInstances", { taskQueue, workflowId: `${taskQueue}-warn-${newId()}`, args: [ttl, 2 * 86_400_000] }) as Promise<number>;
    expect(await run()).toBeGreaterThanOrEqual(1);
    await run();
    const rows = await stack.rt.database.db
      .select()
      .from(notifications)
      .where(and(eq(notifications.userId, user.id), eq(notifications.kind, "INSTANCE_TERMINATING")));
    expect(rows.map((r) => r.subjectId)).toEqual([soon.id]);
    expect(rows[0]!.title).toMatch(/^Machine soon will be terminated after \d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    expect(rows.map((r) => r.subjectId)).not.toContain(later.id);
  });
});

describe("the CLI: reclo notifications and reclo webhooks", () => {
  let stack: TestStack;
  let user: TestUser;
  const receiver = new Receiver();
  const children = new Set<ChildProcess>();
  let tmp: string;
  const raised: string[] = [];
  const reclo = (...args: string[]) =>
    spawnCli(children, args, { env: { ...process.env, ...cliSourceEnv(), RECLO_CONFIG_DIR: tmp, RECLO_URL: stack.app.graphqlUrl, RECLO_TOKEN: user.token } });

  beforeAll(async () => {
    await receiver.start();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "reclo-cli-alerts-"));
    // No worker here: the delivery runs of what this test raises are terminated at the end.
    stack = await startStack({ TEMPORAL_TASK_QUEUE: `test-alerts-cli-${process.pid}-${Date.now()}` });
    user = await signUp(stack);
  });
  afterAll(async () => {
    killChildren(children);
    for (const id of raised) await stack.rt.temporal.client.workflow.getHandle(`notification-${id}`).terminate("test over").catch(() => {});
    await stack?.stop();
    await receiver.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("adds a webhook (secret printed once), lists, tests and removes it; lists notifications, unread first marked", async () => {
    const added = await reclo("webhooks", "add", `${receiver.url}/cli`, "--events", "backup_missed,RECOVERY_FAILED", "--json");
    expect(added.code, added.stderr).toBe(0);
    const hook = JSON.parse(added.stdout) as { id: string; signingSecret: string; events: string[] };
    expect(hook.events).toEqual(["BACKUP_MISSED", "RECOVERY_FAILED"]);
    expect(hook.signingSecret).toMatch(/^whsec_/);
    const tested = await reclo("webhooks", "test", hook.id);
    expect(tested.code, tested.stderr).toBe(0);
    expect(tested.stdout).toMatch(/^DELIVERED: HTTP 204 in \d+ ms/);
    const [post] = receiver.to("/cli");
    expect(verifyWebhookSignature(hook.signingSecret, String(post!.headers["x-reclo-timestamp"]), post!.body, String(post!.headers["x-reclo-signature"]))).toBe(true);
    const listed = await reclo("webhooks", "list");
    expect(listed.stdout).toContain(hook.id);
    expect(listed.stdout).toMatch(/DELIVERED 204/);
    expect(listed.stdout).not.toContain(hook.signingSecret);
    const bad = await reclo("webhooks", "add", `${receiver.url}/x`, "--events", "NOPE");
    expect(bad.code).toBe(2);

    const a = await stack.rt.services.notifications.raise(user.id, { kind: "BACKUP_MISSED", title: "No backup of office since 02:00", body: "b", dedupeKey: `cli:${newId()}` });
    const b = await stack.rt.services.notifications.raise(user.id, { kind: "RECOVERY_FAILED", title: "The recovery of office failed", body: "b", dedupeKey: `cli:${newId()}` });
    raised.push(a.notification.id, b.notification.id);
    await stack.rt.services.notifications.markRead(user.id, [a.notification.id]);
    const unread = await reclo("notifications", "--unread");
    expect(unread.code, unread.stderr).toBe(0);
    expect(unread.stdout).toContain("The recovery of office failed");
    expect(unread.stdout).not.toContain("No backup of office");
    expect(unread.stdout).toContain("1 unread");
    const all = await reclo("notifications", "--json", "--mark-read");
    const body = JSON.parse(all.stdout) as { unread: number; notifications: { title: string }[] };
    expect(body.notifications.map((n) => n.title)).toEqual(["The recovery of office failed", "No backup of office since 02:00"]);
    expect(body.unread).toBe(0);
    const removed = await reclo("webhooks", "remove", hook.id);
    expect(removed.stdout).toContain(`Webhook ${hook.id}`);
    expect((await reclo("webhooks", "list")).stdout).toContain("No webhooks");
  });
});

describe("webhook addresses are hostile input", () => {
  let stack: TestStack;
  let user: TestUser;
  const receiver = new Receiver();

  beforeAll(async () => {
    await receiver.start();
    stack = await startStack({ WEBHOOK_ALLOW_PRIVATE_ADDRESSES: "false" });
    user = await signUp(stack);
  });
  afterAll(async () => {
    await stack?.stop();
    await receiver.stop();
  });

  it("refuses loopback, private, link-local and metadata addresses, other schemes and credentials (BAD_USER_INPUT with a reason)", async () => {
    const cases: [string, string][] = [
      [`${receiver.url}/hook`, "PRIVATE_ADDRESS"],
      ["http://169.254.169.254/latest/meta-data/", "PRIVATE_ADDRESS"],
      ["http://10.1.2.3/hook", "PRIVATE_ADDRESS"],
      ["http://[::1]:8080/hook", "PRIVATE_ADDRESS"],
      ["http://[::ffff:127.0.0.1]/hook", "PRIVATE_ADDRESS"],
      ["http://localhost/hook", "PRIVATE_ADDRESS"],
      ["ftp://example.com/hook", "SCHEME"],
      ["file:///etc/passwd", "SCHEME"],
      ["https://user:secret@example.com/hook", "CREDENTIALS"],
      ["not a url", "MALFORMED"],
    ];
    for (const [url, reason] of cases) {
      const err = await errorOf(user.client.request(AddWebhookDocument, { input: { url, events: ["BACKUP_MISSED"] } }));
      expect(err.code, url).toBe("BAD_USER_INPUT");
      expect(err.extensions, url).toMatchObject({ field: "url", reason });
    }
    expect((await user.client.request(WebhooksDocument, {})).webhooks).toEqual([]);
    expect(receiver.requests).toHaveLength(0);
  });

  it("checks the address again when delivering (a name that now resolves to a private address is refused, nothing is sent)", async () => {
    const port = new URL(receiver.url).port;
    for (const url of [`http://localhost:${port}/rebound`, `${receiver.url}/rebound`]) {
      const r = await postWebhook({ url, body: "{}", headers: {}, timeoutMs: 2_000, allowPrivate: false });
      expect(r, url).toMatchObject({ refused: true, httpStatus: null });
      expect(r.error).toMatch(/loopback, private, link-local or reserved/);
    }
    expect(receiver.requests).toHaveLength(0);
    // Allowed (development), the same request arrives; a redirect is not followed.
    receiver.script("/redirect", [302]);
    const ok = await postWebhook({ url: `${receiver.url}/redirect`, body: "{}", headers: {}, timeoutMs: 2_000, allowPrivate: true });
    expect(ok).toMatchObject({ refused: false, httpStatus: 302 });
    expect(receiver.to("/redirect")).toHaveLength(1);
  });

  it("classifies addresses: public ones pass, every non-public range is refused", () => {
    for (const a of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]) expect(isPrivateAddress(a), a).toBe(false);
    for (const a of ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.96.0.1", "0.0.0.0", "::1", "::", "fd00:ec2::254", "fe80::1", "::ffff:10.0.0.1", "224.0.0.1", "not-an-ip"])
      expect(isPrivateAddress(a), a).toBe(true);
  });
});
