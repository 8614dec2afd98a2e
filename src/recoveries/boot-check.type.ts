import { Field, ObjectType, registerEnumType } from "type-graphql";

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

export enum BootEvidenceKind {
  FIRMWARE = "FIRMWARE",
  SCREEN = "SCREEN",
  SERVICE = "SERVICE",
  MARKER = "MARKER",
  MACHINE = "MACHINE",
}
registerEnumType(BootEvidenceKind, {
  name: "BootEvidenceKind",
  description:
    "FIRMWARE: the firmware's log; SCREEN: OCR of the screen; SERVICE: a banner or reply read on a port; MARKER: the serial boot marker; MACHINE: the machine's own state or the provider's status checks",
});

@ObjectType({ description: "One thing the boot check saw, and when" })
export class BootEvidence {
  @Field(() => BootEvidenceKind)
  kind: BootEvidenceKind;

  @Field({ description: "The check passed (a prompt was read, a banner answered, status checks ok)" })
  ok: boolean;

  @Field({ description: "A failure signature (kernel panic, no bootable device, impaired): this alone fails the check" })
  failure: boolean;

  @Field({ description: "What was seen, in words" })
  detail: string;

  @Field()
  at: Date;
}

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
