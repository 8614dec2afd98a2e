import { randomBytes } from "node:crypto";
import { hashToken } from "../auth/token";
import { and, desc, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { agentKeys, backups, users, type AgentKeyRow, type SessionRow, type UserRow } from "../db/schema";
import { findOwned } from "../db/ownership";
import { AppError, ErrorCode, badInput } from "../shared/errors";
import { isId, newId } from "../shared/ids";
import type { EventBus } from "../events/event-bus";
import { Topic } from "../events/topics";

/** Visible prefix so a leaked agent key is recognisable (and told from a session token, `rcl_`). */
export const AGENT_KEY_PREFIX = "rak_";
const AGENT_KEY_PATTERN = /^rak_[A-Za-z0-9_-]{43}$/;
/** The same rule as SourceService's source names. */
const SOURCE_NAME = /^[\w.@:-][\w .@:-]{0,127}$/;
/** lastUsedAt / lastUsedIp are written at most this often per key. */
const TOUCH_EVERY_MS = 60_000;

export function isAgentKey(token: string): boolean {
  return token.startsWith(AGENT_KEY_PREFIX);
}

/** What an agent key lets a request do: back up one source of its owner. */
export interface AgentScope {
  keyId: string;
  userId: string;
  sourceName: string;
}

export interface AgentAuthenticated {
  user: UserRow;
  key: AgentKeyRow;
}

const keyRefused = (reason: "MALFORMED" | "UNKNOWN" | "REVOKED") =>
  new AppError(
    ErrorCode.UNAUTHENTICATED,
    { MALFORMED: "Malformed agent key: expected `Authorization: Bearer rak_…`", UNKNOWN: "Invalid agent key", REVOKED: "Agent key revoked: create a new one (reclo agent-key create)" }[reason],
    { reason },
  );

/**
 * Agent keys (issue 18): one per source's agent, shown once at creation, stored as a SHA-256 only,
 * listed without their secret and revocable. What a key may do is enforced in src/graphql/agent-scope.ts.
 */
export class AgentKeyService {
  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
    /** Where a revocation is announced: every API process closes the key's open WebSocket connections. */
    private readonly events?: EventBus,
  ) {}

  async create(userId: string, input: { sourceName: string; note?: string | null }): Promise<{ row: AgentKeyRow; key: string }> {
    const sourceName = input.sourceName.trim();
    if (!SOURCE_NAME.test(sourceName)) throw badInput("sourceName must be 1–128 characters: letters, digits, spaces, '.', '_', '-', '@', ':'", { field: "sourceName" });
    const note = input.note?.trim() || null;
    if (note && note.length > 255) throw badInput("note is longer than 255 characters", { field: "note" });
    const key = AGENT_KEY_PREFIX + randomBytes(32).toString("base64url");
    const row: AgentKeyRow = { id: newId(), userId, sourceName, note, keyHash: hashToken(key), createdAt: this.now(), lastUsedAt: null, lastUsedIp: null, revokedAt: null };
    await this.db.insert(agentKeys).values(row);
    return { row, key };
  }

  /** The user's keys, newest first (revoked ones too). */
  async list(userId: string): Promise<AgentKeyRow[]> {
    return this.db.select().from(agentKeys).where(eq(agentKeys.userId, userId)).orderBy(desc(agentKeys.createdAt), desc(agentKeys.id));
  }

  /**
   * Revokes one of the user's keys (idempotent); another user's key is NOT_FOUND. Its open WebSocket
   * connections, on every API process, are closed at once (4401, through SESSIONS_REVOKED with the
   * key's stand-in session id); announced again on a repeat, which closes nothing more.
   */
  async revoke(userId: string, id: string): Promise<AgentKeyRow> {
    const row = await findOwned<AgentKeyRow>(this.db, agentKeys, "AgentKey", userId, id);
    let revoked = row;
    if (!row.revokedAt) {
      const revokedAt = this.now();
      await this.db.update(agentKeys).set({ revokedAt }).where(and(eq(agentKeys.id, row.id), eq(agentKeys.userId, userId)));
      revoked = { ...row, revokedAt };
    }
    if (this.events) closeAgentKeySockets(this.events)(userId, [row.id]);
    return revoked;
  }

  /**
   * Resolves an agent key to its owner and key, or UNAUTHENTICATED. Looked up on every request (no
   * cache): a revoked key is refused at once. Last use (time, address) is written at most once a minute.
   */
  async authenticate(key: string, ip: string | undefined): Promise<AgentAuthenticated> {
    if (!AGENT_KEY_PATTERN.test(key)) throw keyRefused("MALFORMED");
    const [row] = await this.db.select({ key: agentKeys, user: users }).from(agentKeys).innerJoin(users, eq(users.id, agentKeys.userId)).where(eq(agentKeys.keyHash, hashToken(key))).limit(1);
    if (!row) throw keyRefused("UNKNOWN");
    if (row.key.revokedAt) throw keyRefused("REVOKED");
    const now = this.now();
    const address = ip?.slice(0, 64) ?? null;
    if (!row.key.lastUsedAt || now.getTime() - row.key.lastUsedAt.getTime() > TOUCH_EVERY_MS || row.key.lastUsedIp !== address) {
      await this.db.update(agentKeys).set({ lastUsedAt: now, lastUsedIp: address }).where(eq(agentKeys.id, row.key.id));
      row.key.lastUsedAt = now;
      row.key.lastUsedIp = address;
    }
    return row;
  }

  /** Is the key still live? (Before each WebSocket operation.) */
  async isActive(keyId: string): Promise<boolean> {
    const [row] = await this.db.select({ revokedAt: agentKeys.revokedAt }).from(agentKeys).where(eq(agentKeys.id, keyId)).limit(1);
    return Boolean(row && !row.revokedAt);
  }

  /** The source of one of the user's backups (null: no such backup of theirs). */
  async sourceOfBackup(userId: string, backupId: string): Promise<string | null> {
    if (!isId(backupId)) return null;
    const [row] = await this.db.select({ sourceName: backups.sourceName }).from(backups).where(and(eq(backups.id, backupId), eq(backups.userId, userId))).limit(1);
    return row?.sourceName ?? null;
  }
}

/** What a request made with an agent key runs as: its owner (with a stand-in session), within the key's one source. */
export function agentIdentity(a: AgentAuthenticated): { auth: { user: UserRow; session: SessionRow }; agent: AgentScope } {
  return { auth: { user: a.user, session: agentSession(a.key) }, agent: { keyId: a.key.id, userId: a.user.id, sourceName: a.key.sourceName } };
}

/** Closes the open WebSocket connections of revoked keys, on every API process (4401, through SESSIONS_REVOKED). */
export function closeAgentKeySockets(events: EventBus): (userId: string, keyIds: string[]) => void {
  return (userId, keyIds) => events.publish(Topic.SESSIONS_REVOKED, { userId, sessionIds: keyIds.map(agentSessionId) });
}

/** The stand-in session id of an agent key's requests and sockets (`agent:<key id>`). */
export function agentSessionId(keyId: string): string {
  return `agent:${keyId}`;
}

/**
 * The session-shaped stand-in an agent key's request carries as `ctx.auth.session` (what the
 * socket registry and a few session fields read). Its id is not a session's (`agent:<key id>`), so
 * no session operation can match it; the agent scope refuses those operations anyway.
 */
export function agentSession(key: AgentKeyRow): SessionRow {
  return { id: agentSessionId(key.id), userId: key.userId, tokenHash: key.keyHash, createdAt: key.createdAt, expiresAt: new Date(8_640_000_000_000_000), revokedAt: key.revokedAt, lastUsedAt: key.lastUsedAt, reauthenticatedAt: null, ip: key.lastUsedIp, userAgent: null };
}
