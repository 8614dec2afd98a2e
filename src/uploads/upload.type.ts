import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { Connection } from "../graphql/connection";
import { SafeInt } from "../graphql/scalars";

export enum UploadStatus {
  ACTIVE = "ACTIVE",
  COMPLETED = "COMPLETED",
  ABORTED = "ABORTED",
}
registerEnumType(UploadStatus, { name: "UploadStatus" });

@ObjectType({ description: "The upload session of a backup" })
export class Upload {
  @Field(() => ID)
  id: string;

  @Field(() => UploadStatus)
  status: UploadStatus;

  @Field(() => SafeInt)
  bytesSent: number;

  @Field(() => Int)
  chunksSent: number;

  @Field()
  startedAt: Date;

  @Field(() => Date, { nullable: true })
  completedAt: Date | null;

  backupId: string;
}

export const UploadConnection = Connection("Upload", Upload);
