import { datetime, varchar } from "drizzle-orm/mysql-core";

/** Primary key: a UUIDv7 string (see src/shared/ids.ts), sortable by creation time. */
export const idColumn = () => varchar("id", { length: 36 }).primaryKey();

/** A reference to another row's UUIDv7 id. */
export const ref = (name: string) => varchar(name, { length: 36 });

/** UTC timestamp with millisecond precision (DATETIME(3); the pool runs with timezone Z). */
export const ts = (name: string) => datetime(name, { mode: "date", fsp: 3 });

/** created_at / updated_at, maintained by the services (not by the database clock). */
export const timestamps = {
  /** When the row was created. */
  createdAt: ts("created_at").notNull(),
  /** When the row last changed. */
  updatedAt: ts("updated_at").notNull(),
};
