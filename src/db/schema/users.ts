import { mysqlTable, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { idColumn, timestamps } from "../columns";

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
    ...timestamps,
  },
  (t) => [uniqueIndex("users_email_uq").on(t.email), uniqueIndex("users_username_uq").on(t.username)],
);

export type UserRow = typeof users.$inferSelect;
