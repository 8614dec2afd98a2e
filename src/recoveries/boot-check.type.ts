import { Field, ObjectType, registerEnumType } from "type-graphql";
import { BootEvidence } from "../verification/verification.type";


export enum BootCheckStatus {
  CHECKING = "CHECKING",
  VERIFIED = "VERIFIED",
  FAILED = "FAILED",
  INCONCLUSIVE = "INCONCLUSIVE",
}
registerEnumType(BootCheckStatus, {
  name: "BootCheckStatus",
  description: "CHECKING: under way; VERIFIED: a positive sign it started and no failure; FAILED: a failure was seen; INCONCLUSIVE: nothing decisive before the check's timeout",
});

@ObjectType({ description: "\"Checking it started\": the evidence collected on the recovered machine after launch" })
export class BootCheck {
  @Field(() => BootCheckStatus)
  status: BootCheckStatus;

  @Field(() => [BootEvidence])
  evidence: BootEvidence[];

  @Field(() => String, { nullable: true, description: "Why it is FAILED or INCONCLUSIVE, in words" })
  reason: string | null;

  @Field(() => String, { nullable: true, description: "Text read from the last screenshot" })
  screenText: string | null;

  @Field(() => String, { nullable: true, description: "Presigned GET URL of the last screenshot (short-lived; PNG locally, JPEG on AWS)" })
  screenshotUrl: string | null;

  @Field(() => Date, { nullable: true, description: "When the verdict was reached" })
  checkedAt: Date | null;
}
