import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { Connection } from "../graphql/connection";
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
  /** Set on what the live subscription sends (it looks at the workflow itself); absent elsewhere. */
  waitingForWorker?: { since: string; observed: string } | null;
  workflowId?: string;
}

@ObjectType({ description: "No worker is working on the recovery right now (its worker stopped, or none is running): it goes on when one is back" })
export class WaitingForWorker {
  @Field({ description: "Since when (the last sign of a worker at work)" })
  since: Date;

  @Field({ description: "What was observed, e.g. no heartbeat from the import for 6 s" })
  observed: string;
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

export const RecoveryConnection = Connection("Recovery", Recovery);

@ObjectType({ description: "Where this server can recover machines to" })
export class RecoveryTargets {
  @Field(() => RecoveryTarget, { description: "Used when startRecovery names no target" })
  default: RecoveryTarget;

  @Field(() => [RecoveryTarget], { description: "Targets configured on this server" })
  available: RecoveryTarget[];
}
