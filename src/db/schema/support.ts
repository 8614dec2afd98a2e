import { index, json, mysqlEnum, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ref, ts } from "../columns";
import { ownerId } from "./owner";
import { USER_ROLES, users } from "./users";

export const GRANT_SCOPES = ["READ", "READ_AND_RETRY"] as const;
export type GrantScope = (typeof GRANT_SCOPES)[number];

/**
 * A customer's consent to support (issue 17): any SUPPORT user may read the customer's account while
 * the grant is live (not revoked, not expired); READ_AND_RETRY also lets support retry or cancel the
 * customer's recoveries. Without a live grant support sees the e-mail and account status only.
 */
export const supportGrants = mysqlTable(
  "support_grants",
  {
    id: idColumn(),
    /** The customer who granted it. */
    userId: ownerId(),
    scope: mysqlEnum("scope", GRANT_SCOPES).notNull(),
    /** The customer's words for support ("recovery of fileserver fails at IMPORTING"). */
    note: varchar("note", { length: 500 }).notNull().default(""),
    createdAt: ts("created_at").notNull(),
    expiresAt: ts("expires_at").notNull(),
    revokedAt: ts("revoked_at"),
  },
  (t) => [index("support_grants_user_idx").on(t.userId, t.id), index("support_grants_live_idx").on(t.userId, t.revokedAt, t.expiresAt)],
);
export type SupportGrantRow = typeof supportGrants.$inferSelect;

/**
 * Append-only record of who did what on whose account (issue 17): every support read and action,
 * grants and revokes, logins, logouts, password changes, destructive customer actions. Rows are
 * inserted, never updated or deleted by the product (they go with the account).
 */
export const auditEvents = mysqlTable(
  "audit_events",
  {
    id: idColumn(),
    /** Whose account it is about (the customer reads their own). */
    userId: ownerId(),
    /** Who did it: the customer themself, a support user, an admin; null when nobody was signed in (a failed login). */
    actorId: ref("actor_id").references(() => users.id, { onDelete: "set null" }),
    actorRole: mysqlEnum("actor_role", USER_ROLES),
    /** Dotted verb, e.g. "auth.login", "support.read", "grant.create", "backup.delete". */
    action: varchar("action", { length: 64 }).notNull(),
    /** What it touched, e.g. "Recovery:0190…" or a GraphQL field path. */
    target: varchar("target", { length: 255 }),
    /** Anything else worth keeping (operation name, fields read, grant id); never secrets. */
    detail: json("detail").$type<Record<string, unknown>>(),
    /** Client address and request id, as the API saw them. */
    ip: varchar("ip", { length: 64 }),
    requestId: varchar("request_id", { length: 64 }),
    at: ts("at").notNull(),
  },
  (t) => [index("audit_events_user_idx").on(t.userId, t.id), index("audit_events_actor_idx").on(t.actorId, t.id)],
);
export type AuditEventRow = typeof auditEvents.$inferSelect;
