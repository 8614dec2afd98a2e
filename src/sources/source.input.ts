import { Field, InputType, Int } from "type-graphql";

@InputType()
export class SetBackupScheduleInput {
  @Field({ description: "The source (as its backups name it); created when new" })
  sourceName: string;

  @Field({ description: "Weekday of the weekly FULL: SUNDAY … SATURDAY (or sun … sat)" })
  fullEvery: string;

  @Field({ description: 'Daily slot, "HH:MM" 24-hour' })
  incrementalAt: string;

  @Field({ description: "IANA time zone, e.g. Europe/Berlin or UTC" })
  timezone: string;

  @Field(() => Int, { nullable: true, description: "Minutes after a slot before it counts as missed (1–1440, default 60)" })
  graceMinutes?: number | null;
}

@InputType()
export class AgentCheckInInput {
  @Field()
  sourceName: string;

  @Field(() => String, { nullable: true, description: "The agent's host name" })
  host?: string | null;

  @Field(() => String, { nullable: true, description: "The agent's version" })
  version?: string | null;

  @Field(() => String, { nullable: true, description: "The agent's IANA time zone: the schedule's zone when the source is new" })
  timezone?: string | null;
}
