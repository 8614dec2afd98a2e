import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { Connection } from "../graphql/connection";
import { BackupKind } from "../backups/backup.type";
import { WEEKDAYS } from "./source.service";

export enum Weekday {
  SUNDAY = "SUNDAY",
  MONDAY = "MONDAY",
  TUESDAY = "TUESDAY",
  WEDNESDAY = "WEDNESDAY",
  THURSDAY = "THURSDAY",
  FRIDAY = "FRIDAY",
  SATURDAY = "SATURDAY",
}
registerEnumType(Weekday, { name: "Weekday" });
const _days: readonly `${Weekday}`[] = WEEKDAYS;
void _days;

export enum BackupPlanReason {
  NO_COMPLETED_BACKUP = "NO_COMPLETED_BACKUP",
  CHAIN_BROKEN = "CHAIN_BROKEN",
  FULL_SLOT = "FULL_SLOT",
  NO_FULL_SINCE_FULL_SLOT = "NO_FULL_SINCE_FULL_SLOT",
  INCREMENTAL = "INCREMENTAL",
}
registerEnumType(BackupPlanReason, {
  name: "BackupPlanReason",
  description: "Why a backup is FULL or INCREMENTAL",
  valuesConfig: {
    NO_COMPLETED_BACKUP: { description: "FULL: the source has no COMPLETED backup to build on" },
    CHAIN_BROKEN: { description: "FULL: a backup in the latest COMPLETED backup's chain is gone or not COMPLETED" },
    FULL_SLOT: { description: "FULL: the weekly FULL slot" },
    NO_FULL_SINCE_FULL_SLOT: { description: "FULL: no COMPLETED FULL was started since the latest weekly FULL slot" },
    INCREMENTAL: { description: "INCREMENTAL against the latest COMPLETED backup" },
  },
});

@ObjectType({ description: "A source's backup schedule: one daily slot; on `fullEvery` that slot is the weekly FULL" })
export class BackupSchedule {
  @Field(() => Weekday, { description: "Weekday of the weekly FULL (in `timezone`)" })
  fullEvery: Weekday;

  @Field({ description: 'Daily slot, "HH:MM" (24-hour) in `timezone`' })
  incrementalAt: string;

  @Field({ description: "IANA time zone of the slots" })
  timezone: string;

  @Field(() => Int, { description: "Minutes after a slot before it counts as missed" })
  graceMinutes: number;

  @Field(() => Date, { description: "When this schedule took effect (earlier slots are never reported as missed)" })
  since: Date;
}

@ObjectType({ description: "What a backup of a source taken at `at` is, as decided by the server (the one rule)" })
export class BackupPlan {
  @Field(() => Date)
  at: Date;

  @Field(() => BackupKind)
  kind: BackupKind;

  @Field(() => ID, { nullable: true, description: "The parent of an INCREMENTAL (the latest COMPLETED backup)" })
  parentBackupId: string | null;

  @Field(() => BackupPlanReason)
  reason: BackupPlanReason;
}

@ObjectType({ description: "A protected machine: its backup schedule, its agent and how its backups keep up" })
export class Source {
  @Field(() => ID)
  id: string;

  @Field({ description: "As its backups name it" })
  name: string;

  @Field(() => BackupSchedule)
  schedule: BackupSchedule;

  @Field(() => Date, { nullable: true, description: "The agent's last check-in" })
  lastSeenAt: Date | null;

  @Field(() => String, { nullable: true, description: "Host name the agent reported" })
  agentHost: string | null;

  @Field(() => String, { nullable: true, description: "Version the agent reported" })
  agentVersion: string | null;

  @Field(() => Date)
  createdAt: Date;
}

export const SourceConnection = Connection("Source", Source);
