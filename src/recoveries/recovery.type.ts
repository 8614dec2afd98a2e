import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { Connection } from "../graphql/connection";

export enum RecoveryState {
  PENDING = "PENDING",
  PREPARING = "PREPARING",
  IMPORTING = "IMPORTING",
  LAUNCHING = "LAUNCHING",
  COMPLETED = "COMPLETED",
  FAILED = "FAILED",
  CANCELLED = "CANCELLED",
}
export enum RecoveryTarget {
  AWS = "AWS",
  LOCAL = "LOCAL",
}
registerEnumType(RecoveryState, { name: "RecoveryState" });
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

  backupId: string;
}

export const RecoveryConnection = Connection("Recovery", Recovery);
