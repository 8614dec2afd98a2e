import { char, index, mysqlTable, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ts } from "../columns";
import { ownerId } from "./owner";

/**
 * A login session (the seed's "tokens"). The bearer token itself is never stored: only its
 * SHA-256, so a database leak yields no usable token.
 */
export const sessions = mysqlTable(
  "sessions",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    /** Hex SHA-256 of the 256-bit random token. */
    tokenHash: char("token_hash", { length: 64 }).notNull(),
    createdAt: ts("created_at").notNull(),
    /** Hard expiry, enforced on every request and on open WebSocket connections. */
    expiresAt: ts("expires_at").notNull(),
    /** Set by logOut / logOutEverywhere; a revoked session never authenticates again. */
    revokedAt: ts("revoked_at"),
    /** Last time the token authenticated a request (updated at most once a minute). */
    lastUsedAt: ts("last_used_at"),
    /** Last time the password was re-entered on this session (reauthenticate): deleting needs it fresh (issue 18). */
    reauthenticatedAt: ts("reauthenticated_at"),
    /** Client address at login (for the user's own session list). */
    ip: varchar("ip", { length: 64 }),
    userAgent: varchar("user_agent", { length: 255 }),
  },
  (t) => [uniqueIndex("sessions_token_hash_uq").on(t.tokenHash), index("sessions_user_idx").on(t.userId), index("sessions_expires_idx").on(t.expiresAt)],
);

export type SessionRow = typeof sessions.$inferSelect;
