import { index, mysqlEnum, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import { idColumn, ref, timestamps, ts } from "../columns";
import { recoveries, RECOVERY_TARGETS } from "./recoveries";
import { ownerId } from "./owner";

export const INSTANCE_STATES = ["PENDING", "RUNNING", "STOPPING", "STOPPED", "TERMINATED", "LOST"] as const;

/** A virtual machine a recovery produced (EC2 instance or local QEMU process). */
export const instances = mysqlTable(
  "instances",
  {
    id: idColumn(),
    /** Owner. */
    userId: ownerId(),
    /** The recovery that created it. */
    recoveryId: ref("recovery_id").references(() => recoveries.id, { onDelete: "set null" }),
    provider: mysqlEnum("provider", RECOVERY_TARGETS).notNull(),
    /** The provider's id: EC2 instance id, or the local target's instance name. */
    providerId: varchar("provider_id", { length: 128 }).notNull(),
    name: varchar("name", { length: 128 }).notNull(),
    state: mysqlEnum("state", INSTANCE_STATES).notNull(),
    /** How the user reaches it: public address, or 127.0.0.1:<port> locally. */
    address: varchar("address", { length: 255 }),
    privateAddress: varchar("private_address", { length: 255 }),
    /** Availability zone, or "local". */
    zone: varchar("zone", { length: 64 }),
    lastStoppedAt: ts("last_stopped_at"),
    terminatedAt: ts("terminated_at"),
    ...timestamps,
  },
  (t) => [index("instances_user_id_idx").on(t.userId, t.id), index("instances_state_stopped_idx").on(t.state, t.lastStoppedAt), index("instances_provider_idx").on(t.provider, t.providerId)],
);

export type InstanceRow = typeof instances.$inferSelect;
