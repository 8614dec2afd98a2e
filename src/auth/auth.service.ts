import { and, eq, gt, inArray, isNull, lt, or, sql } from "drizzle-orm";
import { isDuplicateKey } from "../db/errors";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { accountTokens, sessions, users, type SessionRow, type UserRow } from "../db/schema";
import { AppError, badInput, conflict, ErrorCode, isBusy, notFound, rateLimited } from "../shared/errors";
import { newId, isId } from "../shared/ids";
import type { EventBus } from "../events/event-bus";
import { Topic } from "../events/topics";
import { checkPasswordPolicy, PASSWORD_MAX_LENGTH, type HashPlace, type PasswordHasher } from "./password";
import { addressKey } from "./client-address";
import type { RateLimiter } from "./rate-limiter";
import { hashToken, isWellFormedToken, newToken } from "./token";
import { SessionCache } from "./session-cache";
import type { AuditService } from "../support/audit.service";

export interface AuthResult {
  token: string;
  expiresAt: Date;
  user: UserRow;
  session: SessionRow;
}

export interface Authenticated {
  user: UserRow;
  session: SessionRow;
}

export interface ClientMeta {
  ip?: string;
  userAgent?: string;
  /** The API request's id, for the audit log. */
  requestId?: string;
}

export type TokenRejection = "MALFORMED" | "UNKNOWN" | "EXPIRED" | "REVOKED";

export const tokenRejected = (reason: TokenRejection) =>
  new AppError(
    ErrorCode.UNAUTHENTICATED,
    {
      MALFORMED: "Malformed token: expected `Authorization: Bearer rcl_…`",
      UNKNOWN: "Invalid token: log in again",
      EXPIRED: "Token expired: log in again",
      REVOKED: "Token revoked (logged out): log in again",
    }[reason],
    { reason },
  );

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$/;
// Pragmatic address check: one @, a dotted domain, no spaces; the real check is the mail we send.
export const EMAIL = /^[^\s@]{1,64}@[^\s@]+\.[^\s@]{2,}$/;
/** RFC 5321's limit for a forward path. */
export const EMAIL_MAX_LENGTH = 254;

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export type SignedUp = { created: true; user: UserRow } | { created: false; email: string };

export interface SignUpOutcome {
  accepted: true;
}

const usernameTaken = () => conflict("This username is taken", { field: "username" });

/** Length checks come first, on the raw input: nothing longer is trimmed, matched, hashed or used as a key. */
export function boundedEmail(raw: string): string {
  const tooLong = () => badInput(`E-mail address is longer than ${EMAIL_MAX_LENGTH} characters`, { field: "email" });
  if (raw.length > EMAIL_MAX_LENGTH + 64) throw tooLong();
  const email = normaliseEmail(raw);
  if (email.length > EMAIL_MAX_LENGTH) throw tooLong();
  return email;
}

export function boundedUsername(raw: string): string {
  const username = raw.length <= 128 ? raw.trim() : raw;
  if (!USERNAME.test(username))
    throw badInput("Username must be 3–64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit", { field: "username" });
  return username;
}

/** At most PASSWORD_MAX_LENGTH characters; counted in UTF-16 units first (a character is at most two). */
export function boundedPassword(password: string): void {
  if (password.length > 2 * PASSWORD_MAX_LENGTH || [...password].length > PASSWORD_MAX_LENGTH)
    throw badInput(`Password is longer than ${PASSWORD_MAX_LENGTH} characters`, { field: "password" });
}

export interface AuthServiceDeps {
  db: Db;
  hasher: PasswordHasher;
  limiter: RateLimiter;
  events: EventBus;
  config: Config["auth"];
  now?: () => Date;
  /**
   * Told after every accepted sign-up, in the background of the answer: `created` with the new
   * account, or not (the address already had one). E-mail verification hangs off it.
   */
  onSignedUp?: (event: SignedUp) => void;
  /** Where a failure of the session cache's revocation listener is reported. */
  onError?: (err: unknown) => void;
  /** The audit log (issue 17): logins, failed logins of existing accounts. */
  audit?: AuditService;
}

/** Accounts and sessions: sign-up, log-in, token checks, log-out. */
export class AuthService {
  private readonly now: () => Date;
  /** Recently authenticated sessions (SESSION_CACHE_TTL; 0 = off), dropped on SESSIONS_REVOKED. */
  readonly sessionCache: SessionCache<Authenticated>;

  constructor(private readonly deps: AuthServiceDeps) {
    this.now = deps.now ?? (() => new Date());
    this.sessionCache = new SessionCache(deps.events, deps.config.sessionCacheTtlMs ?? 0, deps.onError ?? ((err) => console.error("session cache: revocation listener failed", err)), undefined, () =>
      this.now().getTime(),
    );
  }

  /**
   * Creates an account. The answer never says whether the e-mail address already had one: for a
   * registered address the same checks and the same argon2 work run and the same `{ accepted }`
   * comes back (no token: the caller logs in, and a later issue adds e-mail verification). A taken
   * username is CONFLICT: usernames are public handles, and that answer depends on the username only.
   * Rate-limited per client address (IPv6 per /64) before any other work, after a place in the
   * hashing queue is taken: when it is full the answer is BUSY (RATE_LIMITED, reason BUSY) and
   * nothing is counted.
   */
  async signUp(input: { username: string; email: string; password: string }, meta: ClientMeta): Promise<SignUpOutcome> {
    const place = this.deps.hasher.reserve();
    try {
      return await this.signUpWith(place, input, meta);
    } finally {
      place.release();
    }
  }

  private async signUpWith(place: HashPlace, input: { username: string; email: string; password: string }, meta: ClientMeta): Promise<SignUpOutcome> {
    const { perAddress, windowMs } = this.deps.config.signUpRateLimit;
    const byAddress = await this.deps.limiter.hit(`signup:address:${addressKey(meta.ip)}`, perAddress, windowMs);
    if (!byAddress.allowed) throw rateLimited(byAddress.retryAfterSeconds);

    const username = boundedUsername(input.username);
    const email = boundedEmail(input.email);
    if (!EMAIL.test(email)) throw badInput("E-mail address is not valid", { field: "email" });
    boundedPassword(input.password);
    checkPasswordPolicy(input.password, { username, email });

    const [taken] = await this.deps.db.select({ id: users.id }).from(users).where(eq(users.username, username)).limit(1);
    if (taken) throw usernameTaken();

    const passwordHash = await place.hash(input.password);
    const now = this.now();
    const user: UserRow = { id: newId(), username, email, passwordHash, emailVerifiedAt: null, role: "CUSTOMER", createdAt: now, updatedAt: now };
    try {
      await this.deps.db.insert(users).values(user);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // A username taken meanwhile (a race with the check above) is still CONFLICT; a registered
      // e-mail address is answered exactly like a new one.
      if (duplicateKeyMessage(err).includes("users_username_uq")) throw usernameTaken();
      this.deps.onSignedUp?.({ created: false, email });
      return { accepted: true };
    }
    this.deps.onSignedUp?.({ created: true, user });
    return { accepted: true };
  }

  /**
   * A place in the hashing queue first: when it is full the answer is BUSY at once, and neither the
   * address's nor the account's attempts are counted (a storm must not lock people out). The
   * unknown-e-mail path verifies against the dummy hash through the same queue.
   */
  async logIn(input: { email: string; password: string }, meta: ClientMeta): Promise<AuthResult> {
    const place = this.deps.hasher.reserve();
    try {
      return await this.logInWith(place, input, meta);
    } finally {
      place.release();
    }
  }

  private async logInWith(place: HashPlace, input: { email: string; password: string }, meta: ClientMeta): Promise<AuthResult> {
    const { perAccount, perAddress, windowMs } = this.deps.config.loginRateLimit;
    const byAddress = await this.deps.limiter.hit(`login:address:${addressKey(meta.ip)}`, perAddress, windowMs);
    if (!byAddress.allowed) throw rateLimited(byAddress.retryAfterSeconds);
    // Bounded before it becomes a limiter key, a query parameter or argon2 input.
    const email = boundedEmail(input.email);
    boundedPassword(input.password);
    const accountKey = `login:account:${email}`;
    const byAccount = await this.deps.limiter.hit(accountKey, perAccount, windowMs);
    if (!byAccount.allowed) throw rateLimited(byAccount.retryAfterSeconds);

    const [user] = await this.deps.db.select().from(users).where(eq(users.email, email)).limit(1);
    // Verify even when the e-mail is unknown, so response time does not reveal which accounts exist.
    const ok = await place.verify(user?.passwordHash, input.password);
    if (!user || !ok) {
      // Recorded after the answer (not awaited), so the answer's timing does not tell an existing
      // account from an unknown address.
      if (user && this.deps.audit)
        void this.deps.audit
          .record({ userId: user.id, actor: null, action: "auth.login_failed", detail: { reason: "BAD_CREDENTIALS" }, ip: meta.ip, requestId: meta.requestId })
          .catch((err: unknown) => this.deps.onError?.(err));
      throw new AppError(ErrorCode.UNAUTHENTICATED, "Wrong e-mail address or password", { reason: "BAD_CREDENTIALS" });
    }

    await this.deps.limiter.reset(accountKey);
    if (this.deps.hasher.needsRehash(user.passwordHash)) {
      // A second argon2 run, queued like any other; when the queue is full the upgrade waits for
      // the next login (the login itself has succeeded).
      const passwordHash = await this.deps.hasher.hash(input.password).catch((err: unknown) => {
        if (isBusy(err)) return undefined;
        throw err;
      });
      if (passwordHash) await this.deps.db.update(users).set({ passwordHash, updatedAt: this.now() }).where(eq(users.id, user.id));
    }
    return this.openSession(user, meta);
  }

  /**
   * Fresh authentication (issue 18): the password re-entered on this session, recorded as the
   * session's reauthenticatedAt. Rate-limited and queued for argon2 like logIn; a wrong password is
   * UNAUTHENTICATED (reason BAD_CREDENTIALS) and audited as a failed login. Returns the time recorded.
   */
  async reauthenticate(auth: Authenticated, password: string, meta: ClientMeta): Promise<Date> {
    const place = this.deps.hasher.reserve();
    try {
      const { perAccount, perAddress, windowMs } = this.deps.config.loginRateLimit;
      const byAddress = await this.deps.limiter.hit(`login:address:${addressKey(meta.ip)}`, perAddress, windowMs);
      if (!byAddress.allowed) throw rateLimited(byAddress.retryAfterSeconds);
      boundedPassword(password);
      const accountKey = `login:account:${auth.user.email}`;
      const byAccount = await this.deps.limiter.hit(accountKey, perAccount, windowMs);
      if (!byAccount.allowed) throw rateLimited(byAccount.retryAfterSeconds);
      const [user] = await this.deps.db.select().from(users).where(eq(users.id, auth.user.id)).limit(1);
      const ok = await place.verify(user?.passwordHash, password);
      if (!user || !ok) {
        await this.deps.audit?.record({ userId: auth.user.id, actor: null, action: "auth.login_failed", detail: { reason: "BAD_CREDENTIALS", reauthentication: true }, ip: meta.ip, requestId: meta.requestId });
        throw new AppError(ErrorCode.UNAUTHENTICATED, "Wrong password", { reason: "BAD_CREDENTIALS" });
      }
      await this.deps.limiter.reset(accountKey);
      const at = this.now();
      await this.deps.db.update(sessions).set({ reauthenticatedAt: at }).where(eq(sessions.id, auth.session.id));
      await this.deps.audit?.record({ userId: user.id, actor: { id: user.id, role: user.role }, action: "auth.reauthenticated", target: `Session:${auth.session.id}`, ip: meta.ip, requestId: meta.requestId });
      return at;
    } finally {
      place.release();
    }
  }

  /** When this session last re-entered its password (read from the database: the session cache may hold an older copy). */
  async reauthenticatedAt(sessionId: string): Promise<Date | null> {
    const [row] = await this.deps.db.select({ at: sessions.reauthenticatedAt }).from(sessions).where(eq(sessions.id, sessionId)).limit(1);
    return row?.at ?? null;
  }

  /** Resolves a bearer token to its user and session, or throws UNAUTHENTICATED with the reason. */
  async authenticate(token: string): Promise<Authenticated> {
    if (!isWellFormedToken(token)) throw tokenRejected("MALFORMED");
    const tokenHash = hashToken(token);
    const cached = this.sessionCache.get(tokenHash);
    if (cached) {
      const now = this.now();
      if (cached.session.expiresAt.getTime() <= now.getTime()) throw tokenRejected("EXPIRED");
      await this.touch(cached.session, now);
      return cached;
    }
    const ticket = this.sessionCache.ticket();
    const [row] = await this.deps.db
      .select({ session: sessions, user: users })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(eq(sessions.tokenHash, tokenHash))
      .limit(1);
    if (!row) throw tokenRejected("UNKNOWN");
    const now = this.now();
    if (row.session.revokedAt) throw tokenRejected("REVOKED");
    if (row.session.expiresAt.getTime() <= now.getTime()) throw tokenRejected("EXPIRED");
    await this.touch(row.session, now);
    this.sessionCache.set(tokenHash, row, ticket);
    return row;
  }

  /** `lastUsedAt` is written at most once a minute per session (the cached row carries the last write). */
  private async touch(session: SessionRow, now: Date): Promise<void> {
    if (session.lastUsedAt && now.getTime() - session.lastUsedAt.getTime() <= 60_000) return;
    session.lastUsedAt = now;
    await this.deps.db.update(sessions).set({ lastUsedAt: now }).where(eq(sessions.id, session.id));
  }

  /** Still valid right now? (Used before each WebSocket subscription starts.) */
  async isSessionActive(sessionId: string): Promise<boolean> {
    const [row] = await this.deps.db
      .select({ id: sessions.id })
      .from(sessions)
      .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt), gt(sessions.expiresAt, this.now())))
      .limit(1);
    return Boolean(row);
  }

  async logOut(session: SessionRow): Promise<void> {
    await this.revoke(session.userId, [session.id]);
  }

  /** Revokes one of the user's own sessions; another user's session id is NOT_FOUND. */
  async revokeSession(userId: string, sessionId: string): Promise<SessionRow> {
    const [row] = isId(sessionId)
      ? await this.deps.db.select().from(sessions).where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId))).limit(1)
      : [];
    if (!row) throw notFound("Session", sessionId);
    await this.revoke(userId, [row.id]);
    return { ...row, revokedAt: row.revokedAt ?? this.now() };
  }

  /** Revokes every session of the user; returns how many were still active. */
  async logOutEverywhere(userId: string): Promise<number> {
    const now = this.now();
    const [result] = await this.deps.db
      .update(sessions)
      .set({ revokedAt: now })
      .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, now)));
    this.sessionCache.revoke({ userId, sessionIds: "ALL" });
    this.deps.events.publish(Topic.SESSIONS_REVOKED, { userId, sessionIds: "ALL" });
    return result.affectedRows;
  }

  /**
   * Deletes sessions that expired or were revoked more than `olderThanMs` ago (scheduled purge),
   * and e-mailed account tokens (verification, password reset) expired or used as long ago.
   */
  async purgeSessions(olderThanMs = 0): Promise<number> {
    const cutoff = new Date(this.now().getTime() - olderThanMs);
    const [result] = await this.deps.db.delete(sessions).where(or(lt(sessions.expiresAt, cutoff), lt(sessions.revokedAt, cutoff)));
    const [tokens] = await this.deps.db.delete(accountTokens).where(or(lt(accountTokens.expiresAt, cutoff), lt(accountTokens.usedAt, cutoff)));
    return result.affectedRows + tokens.affectedRows;
  }

  private async revoke(userId: string, ids: string[]): Promise<void> {
    await this.deps.db
      .update(sessions)
      .set({ revokedAt: sql`COALESCE(${sessions.revokedAt}, ${this.now()})` })
      .where(and(inArray(sessions.id, ids), eq(sessions.userId, userId)));
    this.sessionCache.revoke({ userId, sessionIds: ids });
    this.deps.events.publish(Topic.SESSIONS_REVOKED, { userId, sessionIds: ids });
  }

  private async openSession(user: UserRow, meta: ClientMeta): Promise<AuthResult> {
    const token = newToken();
    const now = this.now();
    const session: SessionRow = {
      id: newId(),
      userId: user.id,
      tokenHash: hashToken(token),
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.deps.config.tokenTtlMs),
      revokedAt: null,
      lastUsedAt: now,
      reauthenticatedAt: null,
      ip: meta.ip?.slice(0, 64) ?? null,
      userAgent: meta.userAgent?.slice(0, 255) ?? null,
    };
    await this.deps.db.insert(sessions).values(session);
    await this.deps.audit?.record({ userId: user.id, actor: { id: user.id, role: user.role }, action: "auth.login", target: `Session:${session.id}`, ip: meta.ip, requestId: meta.requestId });
    return { token, expiresAt: session.expiresAt, user, session };
  }
}

type SqlError = { code?: string; sqlMessage?: string; cause?: SqlError };

function duplicateKeyMessage(err: unknown): string {
  const e = err as SqlError | undefined;
  return `${e?.sqlMessage ?? ""} ${e?.cause?.sqlMessage ?? ""}`;
}
