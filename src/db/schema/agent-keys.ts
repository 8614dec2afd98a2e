import { char, index, mysqlTable, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ts } from "../columns";
import { ownerId } from "./owner";

/**
 * An agent key (issue 18): a credential for one source's backup agent, able only to take backups of
 * that source (see src/graphql/agent-scope.ts). The key itself is shown once and never stored: only
 * its SHA-256 (a 256-bit random secret needs no slow hash).
 */
export const agentKeys = mysqlTable(
  "agent_keys",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    /** The one source the key may back up (by name: the agent creates it on its first check-in). */
    sourceName: varchar("source_name", { length: 128 }).notNull(),
    note: varchar("note", { length: 255 }),
    /** Hex SHA-256 of the key. */
    keyHash: char("key_hash", { length: 64 }).notNull(),
    createdAt: ts("created_at").notNull(),
    /** Last time the key authenticated a request (written at most once a minute). */
    lastUsedAt: ts("last_used_at"),
    lastUsedIp: varchar("last_used_ip", { length: 64 }),
    /** A revoked key never authenticates again. */
    revokedAt: ts("revoked_at"),
  },
  (t) => [uniqueIndex("agent_keys_key_hash_uq").on(t.keyHash), index("agent_keys_user_idx").on(t.userId)],
);

export type AgentKeyRow = typeof agentKeys.$inferSelect;
