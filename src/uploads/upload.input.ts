import { ArgsType, Field, ID, InputType, Int } from "type-graphql";
import { PageArgsInput } from "../graphql/connection";
import { SafeInt } from "../graphql/scalars";
import { UploadStatus } from "./upload.type";

@InputType({ description: "Filters for `uploads`" })
export class UploadFilter {
  @Field(() => UploadStatus, { nullable: true })
  status?: UploadStatus;
}

@ArgsType()
export class UploadsArgs extends PageArgsInput {
  @Field(() => UploadFilter, { nullable: true })
  filter?: UploadFilter;
}

@InputType({ description: "A chunk the agent sent (its PUT was answered 2xx)" })
export class SentChunkInput {
  @Field(() => Int, { description: "Position in the image (0-based)" })
  index: number;

  @Field({ description: "Hex SHA-256 of the chunk body" })
  sha256: string;
}

@InputType({ description: "The chunks the agent sent since its last confirmation, and how far through the image it is" })
export class ConfirmChunksInput {
  @Field(() => ID)
  backupId: string;

  @Field(() => [SentChunkInput], { description: "Up to 1,000 chunks; each is counted once, and only if the store holds it" })
  chunks: SentChunkInput[];

  @Field(() => SafeInt, { description: "Bytes of the image dealt with so far in this attempt (sent, found stored, all-zero or repeated)" })
  bytesDone: number;
}

@InputType({ description: "Why the agent could not finish an upload; give uploadId or backupId" })
export class FailUploadInput {
  @Field(() => ID, { nullable: true })
  uploadId?: string;

  @Field(() => ID, { nullable: true })
  backupId?: string;

  @Field({ description: "What went wrong, in words (at most 1,000 characters are kept)" })
  reason: string;
}
