import { Field, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { UPLOAD_STATUSES } from "../db/schema";
import { Connection } from "../graphql/connection";
import { SafeInt } from "../graphql/scalars";

export enum UploadStatus {
  ACTIVE = "ACTIVE",
  COMPLETED = "COMPLETED",
  FAILED = "FAILED",
  ABANDONED = "ABANDONED",
}
registerEnumType(UploadStatus, {
  name: "UploadStatus",
  description: "ACTIVE: being sent. COMPLETED: the backup completed. FAILED: the agent said why it stopped (failureReason). ABANDONED: it stopped without a word (see failureReason), or its backup was aborted or deleted.",
});
const _statuses: readonly `${UploadStatus}`[] = UPLOAD_STATUSES;
void _statuses;

@ObjectType({ description: "One agent's attempt to send a backup, and how far it got (updated as the agent confirms chunks the store holds)" })
export class Upload {
  @Field(() => ID)
  id: string;

  @Field(() => UploadStatus)
  status: UploadStatus;

  @Field(() => SafeInt, { description: "Bytes of chunk bodies this upload sent that the store holds" })
  bytesSent: number;

  @Field(() => Int, { description: "Chunks this upload sent that the store holds (chunks already stored are not counted)" })
  chunksSent: number;

  @Field(() => Int, { nullable: true, description: "Chunks of the image (null for uploads older than this field)" })
  chunksTotal: number | null;

  @Field(() => SafeInt, { nullable: true, description: "Bytes of the image (null for uploads older than this field)" })
  bytesTotal: number | null;

  @Field(() => SafeInt, { description: "Bytes of the image dealt with: sent and stored, found already stored, all-zero or repeated. bytesDone / bytesTotal is the progress." })
  bytesDone: number;

  @Field(() => Date, { nullable: true, description: "When the agent last confirmed progress" })
  progressAt: Date | null;

  @Field(() => String, { nullable: true, description: "Why the agent gave up (FAILED), or why the upload was given up on (ABANDONED)" })
  failureReason: string | null;

  @Field()
  startedAt: Date;

  @Field(() => Date, { nullable: true, description: "The last sign of the agent (chunk requests, confirmations, completion attempts)" })
  lastActivityAt: Date | null;

  @Field(() => Date, { nullable: true, description: "When it completed, failed or was abandoned" })
  completedAt: Date | null;

  backupId: string;
  userId: string;
  rate: number;
  /** Set when the row came with it (views and subscription snapshots). */
  sourceName?: string;
}

export const UploadConnection = Connection("Upload", Upload);

