import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { DRILL_STATUSES, DRILL_TRIGGERS } from "../db/schema";
import { Connection } from "../graphql/connection";

export enum DrillStatus {
  RUNNING = "RUNNING",
  VERIFIED = "VERIFIED",
  FAILED = "FAILED",
  INCONCLUSIVE = "INCONCLUSIVE",
  CANCELLED = "CANCELLED",
}
registerEnumType(DrillStatus, {
  name: "DrillStatus",
  valuesConfig: {
    VERIFIED: { description: "The restore point booted: positive evidence and no failure signature" },
    FAILED: { description: "A failure signature, no restorable restore point, or the drill's time limit" },
    INCONCLUSIVE: { description: "Nothing showed that the machine started or failed before the time limit" },
    CANCELLED: { description: "Stopped before a verdict; everything it created was removed" },
  },
});

export enum DrillTriggerKind {
  SCHEDULE = "SCHEDULE",
  AFTER_BACKUP = "AFTER_BACKUP",
  MANUAL = "MANUAL",
}
registerEnumType(DrillTriggerKind, { name: "DrillTrigger", description: "What started a drill" });

const _statuses: readonly `${DrillStatus}`[] = DRILL_STATUSES;
const _triggers: readonly `${DrillTriggerKind}`[] = DRILL_TRIGGERS;
void _statuses;
void _triggers;

@ObjectType({ description: "A source's drill policy: when its latest restore point is recovered in isolation and verified" })
export class DrillPolicy {
  @Field()
  sourceName: string;

  @Field(() => String, { nullable: true, description: 'Interval between scheduled drills ("7d"); null: no schedule' })
  every: string | null;

  @Field({ description: "A completed backup of the source starts a drill" })
  afterEveryBackup: boolean;

  @Field(() => [Int], { description: "Guest TCP ports whose banner/reply is service evidence" })
  ports: number[];

  @Field({ description: "A Temporal Schedule runs the drills" })
  scheduled: boolean;

  @Field(() => Date)
  updatedAt: Date;
}

@ObjectType({ description: "One drill: the latest restore point recovered in isolation, verified on evidence, measured and removed" })
export class Drill {
  @Field(() => ID)
  id: string;

  @Field()
  sourceName: string;

  @Field(() => DrillTriggerKind)
  trigger: DrillTriggerKind;

  @Field(() => DrillStatus)
  status: DrillStatus;

  @Field(() => ID, { nullable: true, description: "The restore point drilled" })
  backupId: string | null;

  /** Resolved by a field resolver (the verification's evidence, screenshot and verdict). */
  verificationId: string | null;

  @Field(() => Number, { nullable: true, description: "Recovery time measured: seconds from the drill's start to the first positive boot evidence (VERIFIED only)" })
  rtoSeconds: number | null;

  @Field(() => String, { nullable: true, description: "The decisive evidence in words" })
  evidenceSummary: string | null;

  @Field(() => String, { nullable: true })
  failureReason: string | null;

  @Field(() => Date)
  startedAt: Date;

  @Field(() => Date, { nullable: true })
  finishedAt: Date | null;
}

export const DrillConnection = Connection("Drill", Drill);

@ObjectType({ description: "One point of a source's RTO trend" })
export class RtoPoint {
  @Field(() => Date, { description: "When the drill started" })
  at: Date;

  @Field(() => Number, { nullable: true, description: "Measured RTO in seconds (null when the drill did not verify)" })
  rtoSeconds: number | null;

  @Field(() => DrillStatus)
  verdict: DrillStatus;
}

@ObjectType({ description: "What the drills and verifications of one source (a protected machine) say about it" })
export class SourceHealth {
  @Field()
  sourceName: string;

  @Field(() => DrillPolicy, { nullable: true })
  policy: DrillPolicy | null;

  @Field(() => Date, { nullable: true, description: "When a restore point of this source was last VERIFIED (by a drill or on request)" })
  lastVerified: Date | null;

  @Field(() => Drill, { nullable: true })
  lastDrill: Drill | null;

  @Field(() => [RtoPoint], { description: "The latest finished drills, oldest first" })
  rtoTrend: RtoPoint[];
}

