import { ArgsType, Field, ID, InputType, Int, ObjectType, registerEnumType } from "type-graphql";
import { Connection, PageArgsInput } from "../graphql/connection";
import type { BootCheckRecord } from "../db/schema";

export enum RecoveryState {
  PENDING = "PENDING",
  PREPARING = "PREPARING",
  IMPORTING = "IMPORTING",
  LAUNCHING = "LAUNCHING",
  CHECKING = "CHECKING",
  COMPLETED = "COMPLETED",
  FAILED = "FAILED",
  CANCELLED = "CANCELLED",
}
export enum RecoveryTarget {
  AWS = "AWS",
  LOCAL = "LOCAL",
}
registerEnumType(RecoveryState, {
  name: "RecoveryState",
  description: "PREPARING → IMPORTING → LAUNCHING → CHECKING (evidence that the machine started) → COMPLETED (see bootCheck for what was seen), or FAILED / CANCELLED",
});
registerEnumType(RecoveryTarget, { name: "RecoveryTarget", description: "Where the recovered machine runs: AWS EC2 or the local QEMU/KVM host" });

@ObjectType({ description: "The recovery of a restore point into a new virtual machine" })
export class Recovery {
  @Field(() => ID)
  id: string;

  @Field(() => RecoveryTarget)
  target: RecoveryTarget;

  @Field(() => RecoveryState)
  state: RecoveryState;

  @Field(() => Int, { description: "0–100 within the current step" })
  stepProgress: number;

  @Field(() => Int, { description: "0–100 over the whole recovery" })
  totalProgress: number;

  @Field(() => String, { nullable: true })
  message: string | null;

  @Field(() => String, { nullable: true })
  failureReason: string | null;

  @Field(() => Date, { nullable: true })
  startedAt: Date | null;

  @Field(() => Date, { nullable: true })
  deadlineAt: Date | null;

  @Field(() => Date, { nullable: true })
  completedAt: Date | null;

  @Field()
  createdAt: Date;

  @Field(() => Int, { description: "Grows with every change: a client that re-subscribes skips what it has already seen" })
  version: number;

  @Field(() => Number, { nullable: true, description: "Measured recovery time objective: seconds from startRecovery to the first positive sign that the machine started (null until then, or when none was seen)" })
  rtoSeconds: number | null;

  backupId: string;
  bootCheck: BootCheckRecord | null;
}

export enum RecoveryEventStatus {
  STARTED = "STARTED",
  SUCCEEDED = "SUCCEEDED",
  FAILED = "FAILED",
  RETRYING = "RETRYING",
  CANCELLED = "CANCELLED",
  CLEANUP = "CLEANUP",
  OBSERVED = "OBSERVED",
}
registerEnumType(RecoveryEventStatus, {
  name: "RecoveryEventStatus",
  description: "CLEANUP: a resource removed while compensating a failed, cancelled or timed-out recovery; OBSERVED: evidence the boot check saw",
});

@ObjectType({ description: "One entry of a recovery's timeline" })
export class RecoveryEvent {
  @Field(() => ID)
  id: string;

  @Field(() => RecoveryState)
  step: RecoveryState;

  @Field(() => RecoveryEventStatus)
  status: RecoveryEventStatus;

  @Field(() => String, { nullable: true })
  message: string | null;

  @Field(() => Int, { description: "Attempt of the step (1 = first try)" })
  attempt: number;

  @Field()
  createdAt: Date;
}

@InputType()
export class StartRecoveryInput {
  @Field(() => ID, { description: "A COMPLETED, restorable backup of yours" })
  backupId: string;

  @Field(() => RecoveryTarget, { nullable: true, description: "Default: the server's (LOCAL unless AWS is configured)" })
  target?: RecoveryTarget;

  @Field({ nullable: true, description: "IPv4 CIDR allowed to reach the machine (AWS); default: the server's setting, else your address" })
  allowedCidr?: string;

  @Field({
    nullable: true,
    description:
      "Let the recovered machine open connections to the internet (default false: it reaches nothing). AWS only (its security group keeps egress); LOCAL refuses it with BAD_USER_INPUT, because QEMU's user network would expose the host",
  })
  allowInternet?: boolean;
}

export const RecoveryConnection = Connection("Recovery", Recovery);

@InputType({ description: "Filters for `recoveries`; all optional, combined with AND" })
export class RecoveryFilter {
  @Field({ nullable: true, description: "true: only recoveries still under way (PENDING to CHECKING); false: only finished ones" })
  active?: boolean;

  @Field(() => ID, { nullable: true, description: "Only recoveries of this backup" })
  backupId?: string;
}

@ArgsType()
export class RecoveriesArgs extends PageArgsInput {
  @Field(() => RecoveryFilter, { nullable: true })
  filter?: RecoveryFilter;
}

@ObjectType({ description: "Where this server can recover machines to" })
export class RecoveryTargets {
  @Field(() => RecoveryTarget, { description: "Used when startRecovery names no target" })
  default: RecoveryTarget;

  @Field(() => [RecoveryTarget], { description: "Targets configured on this server" })
  available: RecoveryTarget[];
}
