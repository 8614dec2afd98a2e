import { Field, ID, InputType, ObjectType, registerEnumType } from "type-graphql";

export enum VerificationStatus {
  PENDING = "PENDING",
  RUNNING = "RUNNING",
  VERIFIED = "VERIFIED",
  FAILED = "FAILED",
}
registerEnumType(VerificationStatus, { name: "VerificationStatus" });

@ObjectType({ description: "Proof that a restore point boots: recovered in isolation, watched, destroyed" })
export class BackupVerification {
  @Field(() => ID)
  id: string;

  @Field(() => VerificationStatus)
  status: VerificationStatus;

  @Field(() => Number, { nullable: true, description: "Seconds from power-on to the boot evidence" })
  bootSeconds: number | null;

  @Field(() => String, { nullable: true, description: "Presigned GET URL of the PNG screenshot (short-lived)" })
  screenshotUrl: string | null;

  @Field(() => String, { nullable: true })
  failureReason: string | null;

  @Field(() => Date, { nullable: true })
  startedAt: Date | null;

  @Field(() => Date, { nullable: true })
  checkedAt: Date | null;
}

@InputType()
export class VerifyBackupInput {
  @Field(() => ID)
  backupId: string;

  @Field({ nullable: true, description: "Serial-console text proving the boot (default: the server's VERIFY_BOOT_MARKER)" })
  bootMarker?: string;
}
