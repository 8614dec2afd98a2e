import { Field, ID, InputType, Int } from "type-graphql";

/** What a user asks for in `verifyBackup` (the workflow's own arguments are VerificationWorkflowInput). */
@InputType()
export class VerifyBackupInput {
  @Field(() => ID)
  backupId: string;

  @Field({ nullable: true, description: "Serial-console text proving the boot (default: the server's VERIFY_BOOT_MARKER)" })
  bootMarker?: string;

  @Field(() => [Int], { nullable: true, description: "Guest TCP ports whose banner/reply proves a service (default 22 and 3389; at most 8)" })
  ports?: number[];
}
