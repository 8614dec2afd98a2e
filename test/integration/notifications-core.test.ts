import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { startStack, signUp, type TestStack, type TestUser } from "../helpers/stack";
import { notifications } from "../../src/db/schema";
import { MailError, SmtpMailer } from "../../src/mail/mailer";
import { clearMailsTo, linksIn, waitForMail } from "../helpers/mailpit";

describe("notifications and mail (the foundation of issue 16)", () => {
  let stack: TestStack;
  let user: TestUser;

  beforeAll(async () => {
    stack = await startStack();
    user = await signUp(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("the SMTP mailer's message arrives in the local mailpit with its text and links intact", async () => {
    const to = `mail-${user.id}@example.test`;
    await clearMailsTo(to);
    const { messageId } = await stack.rt.mailer.send({ to, subject: "Hello from ReClo", text: "Open https://reclo.test/verify?token=abc123 to go on.", headers: { "X-ReClo-Test": "1" } });
    expect(messageId).toMatch(/@/);
    const mail = await waitForMail(to, /^Hello from ReClo$/);
    expect(mail.From.Address).toBe("no-reply@reclo.localhost");
    expect(linksIn(mail)).toEqual(["https://reclo.test/verify?token=abc123"]);
  });

  it("a relay that does not answer is a MailError that says where it sent, never the password", async () => {
    const mailer = new SmtpMailer({ url: "smtp://user:s3cret@127.0.0.1:9", from: "ReClo <no-reply@reclo.localhost>", timeoutMs: 2_000 });
    const err = await mailer.send({ to: "x@example.test", subject: "s", text: "t" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await mailer.close();
    expect(err).toBeInstanceOf(MailError);
    expect((err as MailError).message).toContain("smtp://127.0.0.1:9");
    expect((err as MailError).message).not.toContain("s3cret");
    expect((err as MailError).permanent).toBe(false);
  });

  it("raising the same occurrence twice at once records one notification and tells the listeners once", async () => {
    const told: string[] = [];
    stack.rt.services.notifications.onRaised((row) => void told.push(row.dedupeKey));
    const key = `test:${user.id}:${Date.now()}`;
    const n = { kind: "BACKUP_MISSED" as const, title: "No backup of office since 02:00", body: "The agent did not start the 02:00 backup.", subjectType: "SOURCE", subjectId: "office", dedupeKey: key };
    const [a, b] = await Promise.all([stack.rt.services.notifications.raise(user.id, n), stack.rt.services.notifications.raise(user.id, n)]);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(a.notification.id).toBe(b.notification.id);
    const rows = await stack.rt.database.db.select().from(notifications).where(and(eq(notifications.userId, user.id), eq(notifications.dedupeKey, key)));
    expect(rows).toHaveLength(1);
    expect(told.filter((k) => k === key)).toEqual([key]);
  });
});
