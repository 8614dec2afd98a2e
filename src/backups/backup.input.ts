import { ArgsType, Field, ID, InputType } from "type-graphql";
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
