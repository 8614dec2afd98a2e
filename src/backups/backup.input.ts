import { ArgsType, Field, Float, ID, InputType, Int } from "type-graphql";
import { PageArgsInput } from "../graphql/connection";
import { SafeInt } from "../graphql/scalars";
import { BackupKind, BackupStatus } from "./backup.type";

@InputType({ description: "Filters for `backups`; all optional, combined with AND" })
export class BackupFilter {
  @Field(() => BackupKind, { nullable: true })
  kind?: BackupKind;

  @Field(() => BackupStatus, { nullable: true, description: "Without it, DELETED backups are left out" })
  status?: BackupStatus;

  @Field({ nullable: true })
  sourceName?: string;

  @Field({ nullable: true, description: "Created at or after" })
  createdAfter?: Date;

  @Field({ nullable: true, description: "Created before" })
  createdBefore?: Date;
}

@ArgsType()
export class BackupsArgs extends PageArgsInput {
  @Field(() => BackupFilter, { nullable: true })
  filter?: BackupFilter;
}

@InputType()
export class CreateBackupInput {
  @Field()
  sourceName: string;

  @Field(() => SafeInt, { description: "Size of the disk image in bytes" })
  imageSize: number;

  @Field(() => BackupKind)
  kind: BackupKind;

  @Field(() => ID, { nullable: true, description: "Required for INCREMENTAL: a COMPLETED backup of the same source" })
  parentBackupId?: string;
}

@InputType({ description: "One chunk of the image, as the agent hashed it" })
export class ChunkInput {
  @Field(() => Int, { description: "Position in the image (0-based)" })
  index: number;

  @Field({ description: "Hex SHA-256 of the chunk body" })
  sha256: string;

  @Field(() => Int, { description: "Body size: chunkSize, or less for the last chunk" })
  size: number;
}

@InputType()
export class RequestChunkUploadsInput {
  @Field(() => ID)
  backupId: string;

  @Field(() => [ChunkInput], { description: "Up to 1,000 non-zero chunks per call" })
  chunks: ChunkInput[];
}

@InputType({ description: "The manifest of a finished upload" })
export class CompleteBackupInput {
  @Field(() => ID)
  backupId: string;

  @Field({ description: "Hex SHA-256 of the whole image" })
  sha256: string;

  @Field(() => [String], { nullable: "items", description: "Hex SHA-256 of each chunk in order; null for an all-zero chunk (not uploaded)" })
  chunks: (string | null)[];

  @Field(() => Float, { nullable: true, description: "Mean sampled entropy (bits/byte) of the chunks this run uploaded; the server checks it on chunks it reads back" })
  entropy?: number | null;
}

@InputType()
export class RetentionPolicyInput {
  @Field(() => Int, { description: "Newest FULL backups to keep per source (weekly fulls), at least 1" })
  keepWeeklyFull: number;

  @Field(() => Int, { description: "Keep every backup of the last this-many days per source" })
  keepDaily: number;
}
