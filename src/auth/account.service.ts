import { and, eq, gt, isNull, ne } from "drizzle-orm";
import type { AccountsConfig } from "../config";
import type { Db } from "../db/client";
import { accountTokens, users, type AccountTokenPurpose, type UserRow } from "../db/schema";
import type { Logger } from "../logger";
import type { Mailer, MailMessage } from "../mail/mailer";
import { badInput, emailNotVerified, invalidToken, rateLimited } from "../shared/errors";
import { newId } from "../shared/ids";
import { boundedEmail, boundedPassword, EMAIL, type AuthService, type ClientMeta, type SignedUp } from "./auth.service";
import { addressKey } from "./client-address";
import { checkPasswordPolicy, type PasswordHasher } from "./password";
import type { RateLimiter } from "./rate-limiter";
import { hashToken, isWellFormedToken, newToken } from "./token";
import type { AuditService } from "../support/audit.service";

export interface AccountServiceDeps {
  db: Db;
  hasher: PasswordHasher;
  limiter: RateLimiter;
  mailer: Mailer;
  /** Revokes every session after a password reset. */
  auth: Pick<AuthService, "logOutEverywhere">;
  config: AccountsConfig;
  /** Starts every link in a mail (config.mail.linkBase): the console's pages. */
  linkBase: string;
  logger?: Logger;
  now?: () => Date;
  /** The audit log (issue 17): e-mail verification, password changes. */
  audit?: AuditService;
}

/**
 * The account's e-mail: address verification and password reset.
 *
 * Every link carries a 256-bit random token (src/auth/token.ts); only its SHA-256 is stored
 * (account_tokens), it works once and expires (EMAIL_VERIFICATION_TTL, PASSWORD_RESET_TTL). A
 * token that is unknown, expired or used gets one answer, INVALID_TOKEN.
 *
 * The requests anyone can make before logging in (signUp, requestPasswordReset) never reveal
 * whether an address is registered: they are rate limited and checked first, answered the same,
 * and whatever depends on the address (looking it up, issuing a token, the mail) runs after the
 * answer, in the background, so neither the answer nor its timing depends on it. Mail goes out
 * through the Mailer port; a failed send is logged (the user asks again: resendVerificationEmail,
 * requestPasswordReset).
 */
export class AccountService {
  private readonly now: () => Date;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly deps: AccountServiceDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** REQUIRE_VERIFIED_EMAIL. */
  get requireVerifiedEmail(): boolean {
    return this.deps.config.requireVerifiedEmail;
  }

  /** Resolves when the background work started so far (lookups, tokens, mails) has finished. */
  async whenIdle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  // -------------------------------------------------------------------------------------------
  // Verification

  /** AuthService's sign-up hook: the verification mail for a new account (or a note to the owner of a registered address). */
  signedUp(event: SignedUp): void {
    this.background("sign-up mail", async () => {
      if (event.created) {
        await this.sendVerification(event.user);
        return;
      }
      const [user] = await this.deps.db.select().from(users).where(eq(users.email, event.email)).limit(1);
      if (!user) return;
      if (!(await this.allowMail(user.id))) return;
      if (!user.emailVerifiedAt) {
        await this.sendVerification(user, { counted: true });
        return;
      }
      await this.send({
        to: user.email,
        subject: "Someone tried to create a ReClo account with your address",
        text: [
          `Hello ${user.username},`,
          "",
          "Someone (perhaps you) just tried to create a ReClo account with this e-mail address, which already has one. No new account was made.",
          "",
          "If you forgot your password, you can choose a new one here:",
          `${this.deps.linkBase}/#/forgot-password`,
          "",
          "If it was not you, you can ignore this mail.",
        ].join("\n"),
      });
    });
  }

  /**
   * Sends a new verification link to the logged-in user. False when the address is already
   * verified (nothing is sent). Rate limited per account (ACCOUNT_MAIL_MAX_PER_ACCOUNT).
   */
  async resendVerification(user: UserRow): Promise<boolean> {
    const fresh = await this.reload(user.id);
    if (!fresh || fresh.emailVerifiedAt) return false;
    const { perAccount, windowMs } = this.deps.config.mailRateLimit;
    const hit = await this.deps.limiter.hit(`account-mail:${fresh.id}`, perAccount, windowMs);
    if (!hit.allowed) throw rateLimited(hit.retryAfterSeconds);
    this.background("verification mail", () => this.sendVerification(fresh, { counted: true }));
    return true;
  }

  /** Follows a verification link: the address is verified (INVALID_TOKEN for a bad, expired or used token). */
  async verifyEmail(token: string, meta: ClientMeta): Promise<void> {
    await this.limitTokenAttempt(meta);
    const userId = await this.consume(token, "VERIFY_EMAIL");
    const now = this.now();
    await this.deps.db
      .update(users)
      .set({ emailVerifiedAt: now, updatedAt: now })
      .where(and(eq(users.id, userId), isNull(users.emailVerifiedAt)));
    await this.deps.audit?.record({ userId, actor: null, action: "auth.email_verified", ip: meta.ip, requestId: meta.requestId });
  }

  /** Whether the address is verified, from the database when the (possibly cached) row says not yet. */
  async isVerified(user: UserRow): Promise<boolean> {
    if (user.emailVerifiedAt) return true;
    return Boolean((await this.reload(user.id))?.emailVerifiedAt);
  }

  /** EMAIL_NOT_VERIFIED unless the address is verified (or REQUIRE_VERIFIED_EMAIL is off): before recoveries, drills, boot verifications. */
  async requireVerified(user: UserRow): Promise<void> {
    if (!this.deps.config.requireVerifiedEmail) return;
    if (!(await this.isVerified(user))) throw emailNotVerified();
  }

  // -------------------------------------------------------------------------------------------
  // Password reset

  /**
   * Mails a reset link when the address has an account; the answer is the same either way. Rate
   * limited per client address, then per e-mail address (counted for unknown addresses too),
   * before anything else; the lookup, the token and the mail run after the answer.
   */
  async requestPasswordReset(rawEmail: string, meta: ClientMeta): Promise<void> {
    const { perAccount, perAddress, windowMs } = this.deps.config.mailRateLimit;
    const byAddress = await this.deps.limiter.hit(`reset:address:${addressKey(meta.ip)}`, perAddress, windowMs);
    if (!byAddress.allowed) throw rateLimited(byAddress.retryAfterSeconds);
    const email = boundedEmail(rawEmail);
    if (!EMAIL.test(email)) throw badInput("E-mail address is not valid", { field: "email" });
    const byEmail = await this.deps.limiter.hit(`reset:email:${email}`, perAccount, windowMs);
    if (!byEmail.allowed) throw rateLimited(byEmail.retryAfterSeconds);

    this.background("password-reset mail", async () => {
      const [user] = await this.deps.db.select().from(users).where(eq(users.email, email)).limit(1);
      if (!user) {
        this.deps.logger?.info({ event: "password_reset_unknown_address" }, "password reset requested for an address without an account: nothing sent");
        return;
      }
      const token = await this.issue(user.id, "RESET_PASSWORD", this.deps.config.resetTtlMs);
      await this.send({
        to: user.email,
        subject: "Reset your ReClo password",
        text: [
          `Hello ${user.username},`,
          "",
          "Someone (perhaps you) asked to reset the password of your ReClo account. To choose a new password, open this link:",
          "",
          `${this.deps.linkBase}/reset-password?token=${token}`,
          "",
          `The link works once, for ${describeTtl(this.deps.config.resetTtlMs)}. Setting a new password logs out every session of your account.`,
          "If you did not ask for this, ignore this mail: your password stays as it is.",
        ].join("\n"),
      });
    });
  }

  /**
   * Sets a new password from a reset link: the password policy applies, the token is spent with
   * every other outstanding reset token of the user, every session is revoked (at once, WebSocket
   * connections too), and a notice is mailed. Following the link also proves the address.
   */
  async resetPassword(token: string, newPassword: string, meta: ClientMeta): Promise<void> {
    await this.limitTokenAttempt(meta);
    boundedPassword(newPassword);
    if (!isWellFormedToken(token)) throw invalidToken();
    const [row] = await this.deps.db
      .select({ user: users })
      .from(accountTokens)
      .innerJoin(users, eq(users.id, accountTokens.userId))
      .where(and(eq(accountTokens.tokenHash, hashToken(token)), eq(accountTokens.purpose, "RESET_PASSWORD"), isNull(accountTokens.usedAt), gt(accountTokens.expiresAt, this.now())))
      .limit(1);
    if (!row) throw invalidToken();
    const { user } = row;
    checkPasswordPolicy(newPassword, { username: user.username, email: user.email });
    const passwordHash = await this.deps.hasher.hash(newPassword);

    const now = this.now();
    await this.deps.db.transaction(async (tx) => {
      const [spent] = await tx
        .update(accountTokens)
        .set({ usedAt: now })
        .where(and(eq(accountTokens.tokenHash, hashToken(token)), eq(accountTokens.purpose, "RESET_PASSWORD"), isNull(accountTokens.usedAt), gt(accountTokens.expiresAt, now)));
      // Used by a concurrent request meanwhile.
      if (spent.affectedRows !== 1) throw invalidToken();
      await tx
        .update(accountTokens)
        .set({ usedAt: now })
        .where(and(eq(accountTokens.userId, user.id), eq(accountTokens.purpose, "RESET_PASSWORD"), isNull(accountTokens.usedAt), ne(accountTokens.tokenHash, hashToken(token))));
      await tx
        .update(users)
        .set({ passwordHash, emailVerifiedAt: user.emailVerifiedAt ?? now, updatedAt: now })
        .where(eq(users.id, user.id));
    });
    await this.deps.auth.logOutEverywhere(user.id);
    await this.deps.audit?.record({ userId: user.id, actor: { id: user.id, role: user.role }, action: "auth.password_changed", detail: { via: "reset link", sessionsRevoked: true }, ip: meta.ip, requestId: meta.requestId });
    this.background("password-changed mail", () =>
      this.send({
        to: user.email,
        subject: "Your ReClo password was changed",
        text: [
          `Hello ${user.username},`,
          "",
          `The password of your ReClo account was changed at ${now.toISOString()} with a reset link sent to this address. Every session of your account was logged out.`,
          "",
          "If this was not you, reset your password again at once and tell us:",
          `${this.deps.linkBase}/#/forgot-password`,
        ].join("\n"),
      }),
    );
  }

  // -------------------------------------------------------------------------------------------

  private async reload(userId: string): Promise<UserRow | undefined> {
    const [row] = await this.deps.db.select().from(users).where(eq(users.id, userId)).limit(1);
    return row;
  }

  /** One more account mail for this user within ACCOUNT_MAIL_MAX_PER_ACCOUNT? */
  private async allowMail(userId: string): Promise<boolean> {
    const { perAccount, windowMs } = this.deps.config.mailRateLimit;
    return (await this.deps.limiter.hit(`account-mail:${userId}`, perAccount, windowMs)).allowed;
  }

  private async sendVerification(user: UserRow, opts: { counted?: boolean } = {}): Promise<void> {
    if (!opts.counted && !(await this.allowMail(user.id))) return;
    const token = await this.issue(user.id, "VERIFY_EMAIL", this.deps.config.verificationTtlMs);
    await this.send({
      to: user.email,
      subject: "Verify your e-mail address for ReClo",
      text: [
        `Hello ${user.username},`,
        "",
        "Welcome to ReClo. Please confirm that this is your e-mail address by opening this link:",
        "",
        `${this.deps.linkBase}/verify-email?token=${token}`,
        "",
        `The link works once, for ${describeTtl(this.deps.config.verificationTtlMs)}. Until then you can log in and look around, but not start a recovery.`,
        "If you did not create a ReClo account, ignore this mail.",
      ].join("\n"),
    });
  }

  /** A new token for the user; only its hash is stored. */
  private async issue(userId: string, purpose: AccountTokenPurpose, ttlMs: number): Promise<string> {
    const token = newToken();
    const now = this.now();
    await this.deps.db.insert(accountTokens).values({ id: newId(), userId, purpose, tokenHash: hashToken(token), createdAt: now, expiresAt: new Date(now.getTime() + ttlMs), usedAt: null });
    return token;
  }

  /** Spends a valid token of that purpose and returns its user; INVALID_TOKEN otherwise. */
  private async consume(token: string, purpose: AccountTokenPurpose): Promise<string> {
    if (!isWellFormedToken(token)) throw invalidToken();
    const tokenHash = hashToken(token);
    const [row] = await this.deps.db.select({ userId: accountTokens.userId }).from(accountTokens).where(and(eq(accountTokens.tokenHash, tokenHash), eq(accountTokens.purpose, purpose))).limit(1);
    if (!row) throw invalidToken();
    const now = this.now();
    const [spent] = await this.deps.db
      .update(accountTokens)
      .set({ usedAt: now })
      .where(and(eq(accountTokens.tokenHash, tokenHash), isNull(accountTokens.usedAt), gt(accountTokens.expiresAt, now)));
    if (spent.affectedRows !== 1) throw invalidToken();
    return row.userId;
  }

  /** Redeeming tokens, per client address: cheap (one indexed lookup), but bounded all the same. */
  private async limitTokenAttempt(meta: ClientMeta): Promise<void> {
    const { perAddress, windowMs } = this.deps.config.tokenRateLimit;
    const hit = await this.deps.limiter.hit(`account-token:address:${addressKey(meta.ip)}`, perAddress, windowMs);
    if (!hit.allowed) throw rateLimited(hit.retryAfterSeconds);
  }

  private async send(message: MailMessage): Promise<void> {
    await this.deps.mailer.send({ ...message, headers: { "X-ReClo-Mail": "account", ...message.headers } });
  }

  private background(what: string, work: () => Promise<void>): void {
    const p = work()
      .catch((err: unknown) => this.deps.logger?.error({ err }, `${what} failed`))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }
}

function describeTtl(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} hour${ms === 3_600_000 ? "" : "s"}`;
  return `${Math.max(1, Math.round(ms / 60_000))} minutes`;
}
