import { mysqlEnum, mysqlTable, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, timestamps, ts } from "../columns";

/**
 * CUSTOMER: every account the API creates. SUPPORT reads a customer's account only within a live
 * grant of that customer's (support_grants); ADMIN also reads the whole audit log. SUPPORT and ADMIN
 * are given by `npm run admin`, never by the API (issue 17).
 */
export const USER_ROLES = ["CUSTOMER", "SUPPORT", "ADMIN"] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** An account. Every other record belongs to exactly one user. */
export const users = mysqlTable(
  "users",
  {
    id: idColumn(),
    /** Display name, unique case-insensitively (the collation is case-insensitive). */
    username: varchar("username", { length: 64 }).notNull(),
    /** Normalised (trimmed, lower-cased) e-mail address, unique. */
    email: varchar("email", { length: 254 }).notNull(),
    /** argon2id PHC string (algorithm, parameters, salt and hash). Never leaves the server. */
    passwordHash: varchar("password_hash", { length: 255 }).notNull(),
    /**
     * When the owner proved the address (followed a verification or password-reset link); null =
     * unverified (REQUIRE_VERIFIED_EMAIL keeps recoveries, drills and boot verifications from such
     * an account). Accounts that existed when this column was added count as verified: the
     * migration sets it to their created_at.
     */
    emailVerifiedAt: ts("email_verified_at"),
    role: mysqlEnum("role", USER_ROLES).notNull().default("CUSTOMER"),
    ...timestamps,
  },
  (t) => [uniqueIndex("users_email_uq").on(t.email), uniqueIndex("users_username_uq").on(t.username)],
);

export type UserRow = typeof users.$inferSelect;
