import { char, index, mysqlEnum, mysqlTable, uniqueIndex } from "drizzle-orm/mysql-core";
import { idColumn, ts } from "../columns";
import { ownerId } from "./owner";

export const ACCOUNT_TOKEN_PURPOSES = ["VERIFY_EMAIL", "RESET_PASSWORD"] as const;
export type AccountTokenPurpose = (typeof ACCOUNT_TOKEN_PURPOSES)[number];

/**
 * A one-time token sent by e-mail (address verification, password reset). Like a session token it
 * is never stored itself: only its SHA-256, so a database leak yields no usable link. Single-use
 * (`usedAt`), short-lived (`expiresAt`); a password reset also spends the user's other outstanding
 * reset tokens. Never exposed through the API by id.
 */
export const accountTokens = mysqlTable(
  "account_tokens",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    purpose: mysqlEnum("purpose", ACCOUNT_TOKEN_PURPOSES).notNull(),
    /** Hex SHA-256 of the 256-bit random token. */
    tokenHash: char("token_hash", { length: 64 }).notNull(),
    createdAt: ts("created_at").notNull(),
    expiresAt: ts("expires_at").notNull(),
    /** Set when the token was used (or spent by a later password reset); a used token never works again. */
    usedAt: ts("used_at"),
  },
  (t) => [uniqueIndex("account_tokens_hash_uq").on(t.tokenHash), index("account_tokens_user_idx").on(t.userId, t.purpose), index("account_tokens_expires_idx").on(t.expiresAt)],
);

export type AccountTokenRow = typeof accountTokens.$inferSelect;
