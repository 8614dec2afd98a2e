import { Field, Int, ObjectType } from "type-graphql";
import { SafeInt } from "../graphql/scalars";

@ObjectType({ description: "Your fair-use limits on this service and what you use of them (a null limit is unlimited)" })
export class Quota {
  @Field(() => SafeInt, { description: "Bytes of the distinct chunks your live restore points reference" })
  storedBytes: number;

  @Field(() => SafeInt, { description: "Bytes your unfinished backups were handed upload URLs for (counted against the limit until they complete or expire)" })
  uploadingBytes: number;

  @Field(() => SafeInt, { nullable: true, description: "QUOTA_STORED_BYTES" })
  storedBytesLimit: number | null;

  @Field(() => SafeInt, { description: "Largest disk image a backup may declare" })
  maxImageBytes: number;

  @Field(() => Int, { description: "Recoveries in progress" })
  concurrentRecoveries: number;

  @Field(() => Int, { nullable: true })
  concurrentRecoveriesLimit: number | null;

  @Field(() => Int, { description: "Machines running, starting or stopping, plus those recoveries in progress will launch" })
  runningMachines: number;

  @Field(() => Int, { nullable: true })
  runningMachinesLimit: number | null;

  @Field(() => Int, { nullable: true, description: "Machines the local recovery host runs for all users together" })
  hostRunningMachinesLimit: number | null;

  @Field(() => SafeInt, { description: "An UPLOADING backup with no activity for this many seconds is aborted" })
  uploadExpirySeconds: number;
}
