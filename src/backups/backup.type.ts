import { Field, Float, ID, Int, ObjectType, registerEnumType } from "type-graphql";
import { BACKUP_KINDS, BACKUP_STATUSES, SUSPECT_VERDICTS, type BackupSuspicion as SuspicionData } from "../db/schema";
import { Connection } from "../graphql/connection";
import { SafeInt } from "../graphql/scalars";

export enum BackupKind {
  FULL = "FULL",
  INCREMENTAL = "INCREMENTAL",
}
export enum BackupStatus {
  UPLOADING = "UPLOADING",
  COMPLETED = "COMPLETED",
  ABORTED = "ABORTED",
  DELETED = "DELETED",
}
registerEnumType(BackupKind, { name: "BackupKind", description: "FULL uploads every non-zero chunk; INCREMENTAL only those changed since its parent" });
registerEnumType(BackupStatus, { name: "BackupStatus" });

// The database enums and the GraphQL enums must list the same values.
const _kinds: readonly `${BackupKind}`[] = BACKUP_KINDS;
const _statuses: readonly `${BackupStatus}`[] = BACKUP_STATUSES;
void _kinds;
void _statuses;

export enum SuspectVerdict {
  SAFE = "SAFE",
  ENCRYPTED = "ENCRYPTED",
}
registerEnumType(SuspectVerdict, {
  name: "SuspectVerdict",
  description: "The owner's answer to an encryption alarm",
  valuesConfig: {
    SAFE: { description: "The change was legitimate: the restore point is clean; retention's hold on the clean points before it is lifted (needs a fresh authentication)" },
    ENCRYPTED: { description: "The disk was encrypted: the restore point stays marked; recover from the last clean one, which retention keeps until you delete it" },
  },
});
const _verdicts: readonly `${SuspectVerdict}`[] = SUSPECT_VERDICTS;
void _verdicts;

@ObjectType({ description: "Why the encryption alarm (possible ransomware) went off for a restore point" })
export class BackupSuspicion implements SuspicionData {
  @Field()
  reason: string;

  @Field(() => Float, { description: "Chunks that differ from the parent, in % of the image" })
  changedPercent: number;

  @Field(() => Float, { nullable: true, description: "The source's usual change rate: median of its recent incrementals, in % (null: no history)" })
  usualPercent: number | null;

  @Field(() => Float, { description: "Mean entropy (bits/byte) of new chunks the server read back and measured" })
  entropy: number;

  @Field(() => Float, { nullable: true, description: "What the agent reported for its new chunks" })
  agentEntropy: number | null;

  @Field(() => Int)
  sampledChunks: number;

  @Field(() => SuspectVerdict, { nullable: true, description: "The owner's answer; unless SAFE, retention keeps the last clean restore points before this one" })
  verdict: SuspectVerdict | null;

  @Field(() => Date, { nullable: true })
  resolvedAt: Date | null;
}

@ObjectType({ description: "A restore point: one backup of a source's disk image, stored as a manifest of content-addressed chunks" })
export class Backup {
  @Field(() => ID)
  id: string;

  @Field(() => BackupKind)
  kind: BackupKind;

  @Field(() => BackupStatus)
  status: BackupStatus;

  @Field({ description: "The protected machine or disk (e.g. its host name)" })
  sourceName: string;

  @Field(() => SafeInt, { description: "Image size in bytes" })
  imageSize: number;

  @Field(() => Int, { description: "Chunk size in bytes, fixed per source lineage" })
  chunkSize: number;

  @Field(() => Int)
  chunkCount: number;

  @Field(() => SafeInt, { description: "Bytes this backup actually sent (chunks already stored are not sent again)" })
  uploadedBytes: number;

  @Field(() => String, { nullable: true, description: "Hex SHA-256 of the whole image, once completed" })
  sha256: string | null;

  @Field()
  createdAt: Date;

  @Field(() => Date, { nullable: true })
  completedAt: Date | null;

  @Field(() => Int, { nullable: true, description: "For an incremental: chunks that differ from its parent" })
  changedChunks: number | null;
  @Field(() => Date, { nullable: true, description: "Deletion pending (in the trash): when it was asked for" })
  deletionRequestedAt: Date | null;

  @Field(() => Date, { nullable: true, description: "Deletion pending: when maintenance deletes it; until then it stays restorable (restoreFromTrash)" })
  deleteAfter: Date | null;

  /** Not a GraphQL field: `parent` resolves it, owner-scoped. */
  parentId: string | null;

  /** Not GraphQL fields: `suspect` resolves them. */
  suspectVerdict?: SuspectVerdict | null;
  suspectResolvedAt?: Date | null;
}

export const BackupConnection = Connection("Backup", Backup);

@ObjectType()
export class HttpHeader {
  @Field()
  name: string;

  @Field()
  value: string;
}

@ObjectType({ description: "Where (and whether) to upload one chunk" })
export class ChunkUploadTicket {
  @Field(() => Int)
  index: number;

  @Field()
  sha256: string;

  @Field({ description: "True when the store already has this content: do not upload" })
  alreadyStored: boolean;

  @Field(() => String, { nullable: true, description: "Presigned PUT URL, bound to this key, size and checksum" })
  url: string | null;

  @Field(() => [HttpHeader], { description: "Headers the PUT must carry exactly (checksum, length)" })
  headers: HttpHeader[];

  @Field(() => Date, { nullable: true })
  expiresAt: Date | null;
}

@ObjectType()
export class ChunkUploadBatch {
  @Field(() => ID)
  backupId: string;

  @Field(() => [ChunkUploadTicket])
  tickets: ChunkUploadTicket[];

  @Field(() => Int, { description: "How many tickets need an upload" })
  toUpload: number;
}

@ObjectType({ description: "How long restore points are kept; applied by the backup-maintenance schedule" })
export class RetentionPolicy {
  @Field(() => Int)
  keepWeeklyFull: number;

  @Field(() => Int)
  keepDaily: number;

  @Field()
  updatedAt: Date;

  @Field(() => Int, { nullable: true, description: "A pending shortening (in the trash) of keepWeeklyFull" })
  pendingKeepWeeklyFull: number | null;

  @Field(() => Int, { nullable: true, description: "A pending shortening (in the trash) of keepDaily" })
  pendingKeepDaily: number | null;

  @Field(() => Date, { nullable: true, description: "When the pending shortening takes effect" })
  pendingEffectiveAt: Date | null;
}
