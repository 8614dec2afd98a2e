import { Field, ID, ObjectType, registerEnumType } from "type-graphql";
import { Connection } from "../graphql/connection";
import { RecoveryTarget } from "../recoveries/recovery.type";

export enum InstanceState {
  PENDING = "PENDING",
  RUNNING = "RUNNING",
  STOPPING = "STOPPING",
  STOPPED = "STOPPED",
  TERMINATED = "TERMINATED",
  LOST = "LOST",
}
registerEnumType(InstanceState, { name: "InstanceState", description: "LOST: the provider no longer knows the machine" });

@ObjectType({ description: "A recovered virtual machine" })
export class Instance {
  @Field(() => ID)
  id: string;

  @Field(() => RecoveryTarget)
  provider: RecoveryTarget;

  @Field({ description: "The provider's id (EC2 instance id or local instance name)" })
  providerId: string;

  @Field()
  name: string;

  @Field(() => InstanceState)
  state: InstanceState;

  @Field(() => String, { nullable: true, description: "Where to reach it (public address, or 127.0.0.1:<port> locally)" })
  address: string | null;

  @Field(() => String, { nullable: true })
  privateAddress: string | null;

  @Field(() => String, { nullable: true })
  zone: string | null;

  @Field(() => Date, { nullable: true })
  lastStoppedAt: Date | null;

  @Field()
  createdAt: Date;

  recoveryId: string | null;
}

@ObjectType({ description: "A console screenshot, stored in the artifacts bucket" })
export class Screenshot {
  @Field({ description: "Presigned GET URL (short-lived)" })
  url: string;

  @Field({ description: "image/png (local target) or image/jpeg (EC2)" })
  contentType: string;

  @Field()
  takenAt: Date;

  @Field()
  expiresAt: Date;
}

export const InstanceConnection = Connection("Instance", Instance);
