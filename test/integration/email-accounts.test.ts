import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { eq, sql } from "drizzle-orm";
import { startStack, signUp, uniqueName, PASSWORD, errorOf, tokenIn, VERIFY_SUBJECT, type TestStack } from "../helpers/stack";
import { mailsTo, readMail, waitForMail } from "../helpers/mailpit";
import { openSubscription, withTimeout } from "../helpers/ws";
import { backupImage, makeImage, MiB } from "../helpers/backup";
import { ReCloClient } from "../../src/client/graphql-client";
import {
  BackupChangedDocument,
  LogInDocument,
  MeDocument,
  RequestPasswordResetDocument,
  ResendVerificationEmailDocument,
  ResetPasswordDocument,
  SignUpDocument,
  StartDrillDocument,
  StartRecoveryDocument,
  VerifyBackupDocument,
  VerifyEmailDocument,
} from "../../src/client/generated/graphql";
import { accountTokens, users } from "../../src/db/schema";
import { root } from "../helpers/processes";

/**
 * Issue 16, accounts with e-mail: sign-up mails a verification link (random token, stored only as
 * its SHA-256, single-use, expiring); unverified accounts log in but cannot start recoveries, drills
 * or boot verifications (EMAIL_NOT_VERIFIED); password reset by a mailed link never reveals whether
 * an address is registered, and revokes every session. Real MariaDB, real SMTP (mailpit).
 */

const RESET_SUBJECT = /^Reset your ReClo password/;
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const NEW_PASSWORD = "a brand new passphrase 42";

describe("e-mail verification", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ ACCOUNT_MAIL_MAX_PER_ACCOUNT: "3" });
  });
  afterAll(() => stack.stop());

  it("sign-up mails a link to the console's /verify-email; the token is stored only hashed, works once, and me.emailVerified turns true", async () => {
    const u = await signUp(stack, uniqueName("verify"), { verify: false });
    expect((await u.client.request(MeDocument)).me.emailVerified).toBe(false);

    const mail = await waitForMail(u.email, VERIFY_SUBJECT);
    const link = new URL(mail.Text.match(/https?:\/\/\S+verify-email\S+/)![0]);
    expect(`${link.origin}`).toBe(stack.config.mail.linkBase);
    const token = tokenIn(mail, "/verify-email");
    expect(Buffer.from(token.slice(4), "base64url")).toHaveLength(32);
    const rows = await stack.rt.database.db.select().from(accountTokens).where(eq(accountTokens.userId, u.id));
    expect(rows).toMatchObject([{ purpose: "VERIFY_EMAIL", tokenHash: sha256(token), usedAt: null }]);
    expect(rows[0]!.expiresAt.getTime() - rows[0]!.createdAt.getTime()).toBe(24 * 3_600_000);
    expect(JSON.stringify(rows)).not.toContain(token.slice(4));

    // No login needed: the link may be opened in another browser.
    await expect(stack.client.request(VerifyEmailDocument, { token })).resolves.toEqual({ verifyEmail: true });
    expect((await u.client.request(MeDocument)).me.emailVerified).toBe(true);
    const again = await errorOf(stack.client.request(VerifyEmailDocument, { token }));
    expect(again.code).toBe("INVALID_TOKEN");
    // Verified: nothing more to send.
    await expect(u.client.request(ResendVerificationEmailDocument)).resolves.toEqual({ resendVerificationEmail: false });
  });

  it("unknown, malformed, used and expired tokens get the same INVALID_TOKEN", async () => {
    const u = await signUp(stack, uniqueName("expire"), { verify: false });
    const token = tokenIn(await waitForMail(u.email, VERIFY_SUBJECT), "/verify-email");
    await stack.rt.database.db.update(accountTokens).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(accountTokens.tokenHash, sha256(token)));
    const expired = await errorOf(stack.client.request(VerifyEmailDocument, { token }));
    const unknown = await errorOf(stack.client.request(VerifyEmailDocument, { token: `rcl_${randomBytes(32).toString("base64url")}` }));
    const malformed = await errorOf(stack.client.request(VerifyEmailDocument, { token: "x".repeat(5000) }));
    for (const e of [expired, unknown, malformed]) expect(e.errors).toEqual(expired.errors);
    expect(expired.code).toBe("INVALID_TOKEN");
    expect((await u.client.request(MeDocument)).me.emailVerified).toBe(false);
  });

  it("resendVerificationEmail mails a new working link, rate limited per account", async () => {
    const u = await signUp(stack, uniqueName("resend"), { verify: false });
    await waitForMail(u.email, VERIFY_SUBJECT);
    // The sign-up mail was the first of ACCOUNT_MAIL_MAX_PER_ACCOUNT=3.
    await expect(u.client.request(ResendVerificationEmailDocument)).resolves.toEqual({ resendVerificationEmail: true });
    await expect(u.client.request(ResendVerificationEmailDocument)).resolves.toEqual({ resendVerificationEmail: true });
    const limited = await errorOf(u.client.request(ResendVerificationEmailDocument));
    expect(limited.code).toBe("RATE_LIMITED");
    await stack.rt.services.accounts.whenIdle();
    const mails = await mailsTo(u.email);
    expect(mails.filter((m) => VERIFY_SUBJECT.test(m.Subject))).toHaveLength(3);
    // The newest link works (the older ones too, until they expire: each is single-use).
    const newest = await readMail(mails[0]!.ID);
    await expect(stack.client.request(VerifyEmailDocument, { token: tokenIn(newest, "/verify-email") })).resolves.toEqual({ verifyEmail: true });
    expect((await u.client.request(MeDocument)).me.emailVerified).toBe(true);
  });

  it("an unverified account logs in but cannot start a recovery, a drill or a boot verification (EMAIL_NOT_VERIFIED) until it follows the link", async () => {
    const u = await signUp(stack, uniqueName("unverified"), { verify: false });
    const { backup } = await backupImage(stack, u.id, makeImage(2 * MiB, MiB), { sourceName: "unverified-src" });
    const attempts = [
      () => u.client.request(StartRecoveryDocument, { input: { backupId: backup.id, target: "LOCAL" } }),
      () => u.client.request(StartDrillDocument, { sourceName: "unverified-src" }),
      () => u.client.request(VerifyBackupDocument, { input: { backupId: backup.id } }),
    ];
    for (const attempt of attempts) {
      const err = await errorOf(attempt());
      expect(err.code).toBe("EMAIL_NOT_VERIFIED");
      expect(err.message).toMatch(/Verify your e-mail address/);
    }
    // Nothing was started.
    expect((await stack.rt.services.recoveries.list(u.id, {}, {})).totalCount).toBe(0);

    // A registered address signing up again: still the same answer, and (unverified) a fresh link.
    await stack.client.request(SignUpDocument, { input: { username: uniqueName(), email: u.email, password: PASSWORD } });
    await stack.rt.services.accounts.whenIdle();
    expect((await mailsTo(u.email)).filter((m) => VERIFY_SUBJECT.test(m.Subject))).toHaveLength(2);

    await stack.client.request(VerifyEmailDocument, { token: tokenIn(await waitForMail(u.email, VERIFY_SUBJECT), "/verify-email") });
    // Verified at once, although this session's user row is cached (SESSION_CACHE_TTL): the next
    // refusal is about the drill itself, not the address.
    const drill = await errorOf(u.client.request(StartDrillDocument, { sourceName: "no-such-source" }));
    expect(drill.code).not.toBe("EMAIL_NOT_VERIFIED");
  });

  it("accounts that existed before verification count as verified: a migration sets their email_verified_at to created_at", async () => {
    const u = await signUp(stack, uniqueName("legacy"), { verify: false });
    // The statement the migrations carry (hand-written after drizzle-kit's ALTER TABLE: keep it when migrations are regenerated).
    const statements = fs
      .readdirSync(path.join(root, "drizzle"))
      .filter((f) => f.endsWith(".sql"))
      .flatMap((f) => fs.readFileSync(path.join(root, "drizzle", f), "utf8").split("--> statement-breakpoint"))
      .map((st) => st.replace(/^\s*--.*$/gm, "").trim())
      .filter((st) => /^UPDATE `users` SET `email_verified_at`/.test(st));
    expect(statements).toHaveLength(1);
    await stack.rt.database.db.execute(sql.raw(statements[0]!));
    const [row] = await stack.rt.database.db.select().from(users).where(eq(users.id, u.id));
    expect(row!.emailVerifiedAt).toEqual(row!.createdAt);
    expect((await u.client.request(MeDocument)).me.emailVerified).toBe(true);
  });
});

describe("REQUIRE_VERIFIED_EMAIL=false", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ REQUIRE_VERIFIED_EMAIL: "false" });
  });
  afterAll(() => stack.stop());

  it("lets an unverified account past the check", async () => {
    const u = await signUp(stack, uniqueName("optional"), { verify: false });
    expect((await u.client.request(MeDocument)).me.emailVerified).toBe(false);
    const err = await errorOf(u.client.request(StartDrillDocument, { sourceName: "no-such-source" }));
    expect(err.code).not.toBe("EMAIL_NOT_VERIFIED");
  });
});

describe("password reset", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ ACCOUNT_MAIL_MAX_PER_ACCOUNT: "3" });
  });
  afterAll(() => stack.stop());

  it("request → mail → link → new password: the old one and every old session stop working at once (WebSocket too), the link works once, other links die", async () => {
    const u = await signUp(stack, uniqueName("reset"));
    const second = (await stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).logIn.token;
    const sub = openSubscription(u.client, BackupChangedDocument);
    await sub.connected;

    const answer = await stack.client.request(RequestPasswordResetDocument, { email: u.email.toUpperCase() });
    expect(answer.requestPasswordReset.accepted).toBe(true);
    const first = tokenIn(await waitForMail(u.email, RESET_SUBJECT), "/reset-password");
    await stack.client.request(RequestPasswordResetDocument, { email: u.email });
    await stack.rt.services.accounts.whenIdle();
    const resetMails = (await mailsTo(u.email)).filter((m) => RESET_SUBJECT.test(m.Subject));
    expect(resetMails).toHaveLength(2);
    const latest = tokenIn(await readMail(resetMails[0]!.ID), "/reset-password");
    expect(latest).not.toBe(first);
    const [row] = await stack.rt.database.db.select().from(accountTokens).where(eq(accountTokens.tokenHash, sha256(latest)));
    expect(row!.expiresAt.getTime() - row!.createdAt.getTime()).toBe(3_600_000);

    // The policy applies, and a refused password does not spend the link.
    const weak = await errorOf(stack.client.request(ResetPasswordDocument, { input: { token: latest, newPassword: "short" } }));
    expect(weak.code).toBe("BAD_USER_INPUT");
    await expect(stack.client.request(ResetPasswordDocument, { input: { token: latest, newPassword: NEW_PASSWORD } })).resolves.toEqual({ resetPassword: true });

    expect((await withTimeout(sub.ended, 5000, "subscription closed after the reset")).code).toBe(4401);
    await sub.dispose();
    for (const token of [u.token, second]) expect((await errorOf(stack.client.withToken(token).request(MeDocument))).code).toBe("UNAUTHENTICATED");
    expect((await errorOf(stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } }))).code).toBe("UNAUTHENTICATED");
    const fresh = await stack.client.request(LogInDocument, { input: { email: u.email, password: NEW_PASSWORD } });
    expect(fresh.logIn.user.id).toBe(u.id);

    for (const token of [latest, first]) {
      const reuse = await errorOf(stack.client.request(ResetPasswordDocument, { input: { token, newPassword: "yet another passphrase 7" } }));
      expect(reuse.code).toBe("INVALID_TOKEN");
    }
    const notice = await waitForMail(u.email, /password was changed/);
    expect(notice.Text).toContain("logged out");
    const [user] = await stack.rt.database.db.select().from(users).where(eq(users.id, u.id));
    expect(user!.passwordHash).toMatch(/^\$argon2id\$/);
  });

  it("an expired reset link fails with INVALID_TOKEN and changes nothing; a verification token is no reset token", async () => {
    const u = await signUp(stack, uniqueName("resetexp"));
    await stack.client.request(RequestPasswordResetDocument, { email: u.email });
    const token = tokenIn(await waitForMail(u.email, RESET_SUBJECT), "/reset-password");
    await stack.rt.database.db.update(accountTokens).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(accountTokens.tokenHash, sha256(token)));
    expect((await errorOf(stack.client.request(ResetPasswordDocument, { input: { token, newPassword: NEW_PASSWORD } }))).code).toBe("INVALID_TOKEN");

    const v = await signUp(stack, uniqueName("wrongkind"), { verify: false });
    const verifyToken = tokenIn(await waitForMail(v.email, VERIFY_SUBJECT), "/verify-email");
    expect((await errorOf(stack.client.request(ResetPasswordDocument, { input: { token: verifyToken, newPassword: NEW_PASSWORD } }))).code).toBe("INVALID_TOKEN");

    await expect(u.client.request(MeDocument)).resolves.toMatchObject({ me: { id: u.id } });
    await expect(stack.client.request(LogInDocument, { input: { email: u.email, password: PASSWORD } })).resolves.toBeTruthy();
  });

  it("an unknown address is answered exactly like a registered one and gets no mail; a bad address is BAD_USER_INPUT", async () => {
    const u = await signUp(stack, uniqueName("known"));
    const unknown = `${uniqueName("nobody")}@example.com`;
    const forKnown = await stack.client.execute(RequestPasswordResetDocument, { email: u.email });
    const forUnknown = await stack.client.execute(RequestPasswordResetDocument, { email: unknown });
    expect(forUnknown.status).toBe(forKnown.status);
    expect(forUnknown.body).toEqual(forKnown.body);
    await stack.rt.services.accounts.whenIdle();
    expect(await mailsTo(unknown)).toEqual([]);
    expect((await mailsTo(u.email)).filter((m) => RESET_SUBJECT.test(m.Subject))).toHaveLength(1);
    expect((await errorOf(stack.client.request(RequestPasswordResetDocument, { email: "not-an-address" }))).code).toBe("BAD_USER_INPUT");
  });

  it("takes one reset request (or reset) per HTTP request: aliases are refused before any resolver runs", async () => {
    const u = await signUp(stack, uniqueName("alias"));
    const field = (i: number) => `r${i}: requestPasswordReset(email: "${u.email}") { accepted }`;
    const res = await fetch(stack.app.graphqlUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: `mutation { ${field(1)} ${field(2)} }` }) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { extensions: Record<string, unknown> }[] }).errors[0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", limit: "MUTATIONS", maxMutations: 1 });
    await stack.rt.services.accounts.whenIdle();
    expect(await mailsTo(u.email).then((m) => m.filter((x) => RESET_SUBJECT.test(x.Subject)))).toEqual([]);
  });

  it("is rate limited per e-mail address, known or not, with the same answers", async () => {
    const u = await signUp(stack, uniqueName("resetrl"));
    const unknown = `${uniqueName("nobody")}@example.com`;
    for (const email of [u.email, unknown]) {
      for (let i = 0; i < 3; i++) await expect(stack.client.request(RequestPasswordResetDocument, { email })).resolves.toMatchObject({ requestPasswordReset: { accepted: true } });
    }
    const known = await errorOf(stack.client.request(RequestPasswordResetDocument, { email: u.email }));
    const other = await errorOf(stack.client.request(RequestPasswordResetDocument, { email: unknown }));
    expect(known.code).toBe("RATE_LIMITED");
    expect(other.code).toBe("RATE_LIMITED");
    expect(other.message.replace(/\d+ s/, "N s")).toBe(known.message.replace(/\d+ s/, "N s"));
    await stack.rt.services.accounts.whenIdle();
    expect((await mailsTo(u.email)).filter((m) => RESET_SUBJECT.test(m.Subject))).toHaveLength(3);
  });
});

describe("password reset, per client address", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack({ PASSWORD_RESET_MAX_PER_ADDRESS: "2", ACCOUNT_TOKEN_MAX_PER_ADDRESS: "2", TRUST_PROXY: "1" });
  });
  afterAll(() => stack.stop());

  it("limits reset requests and token redemptions per client address before any other work", async () => {
    const client = new ReCloClient({ url: stack.app.graphqlUrl, headers: { "x-forwarded-for": `198.18.${randomBytes(1)[0]}.${1 + (randomBytes(1)[0]! % 254)}` } });
    for (let i = 0; i < 2; i++) await client.request(RequestPasswordResetDocument, { email: `${uniqueName("ip")}@example.com` });
    // Refused before the address is even checked.
    expect((await errorOf(client.request(RequestPasswordResetDocument, { email: "not-an-address" }))).code).toBe("RATE_LIMITED");

    const bogus = () => client.request(VerifyEmailDocument, { token: `rcl_${randomBytes(32).toString("base64url")}` });
    expect((await errorOf(bogus())).code).toBe("INVALID_TOKEN");
    expect((await errorOf(client.request(ResetPasswordDocument, { input: { token: "x", newPassword: NEW_PASSWORD } }))).code).toBe("INVALID_TOKEN");
    expect((await errorOf(bogus())).code).toBe("RATE_LIMITED");
  });
});
