import { Field, ID, ObjectType, registerEnumType } from "type-graphql";

export enum VerificationStatus {
  PENDING = "PENDING",
  RUNNING = "RUNNING",
  VERIFIED = "VERIFIED",
  FAILED = "FAILED",
  INCONCLUSIVE = "INCONCLUSIVE",
}
registerEnumType(VerificationStatus, {
  name: "VerificationStatus",
  valuesConfig: {
    VERIFIED: { description: "At least one positive SERVICE, SCREEN or MARKER signal and no failure signature" },
    FAILED: { description: "A failure signature was seen (see failureReason and evidence), or the check could not run" },
    INCONCLUSIVE: { description: "Nothing showed that the machine started or failed before the time limit" },
  },
});

export enum EvidenceKind {
  FIRMWARE = "FIRMWARE",
  SCREEN = "SCREEN",
  SERVICE = "SERVICE",
  MARKER = "MARKER",
  MACHINE = "MACHINE",
}
registerEnumType(EvidenceKind, {
  name: "EvidenceKind",
  valuesConfig: {
    FIRMWARE: { description: "The firmware's own log (SeaBIOS debug console)" },
    SCREEN: { description: "Text read (OCR) from screenshots" },
    SERVICE: { description: "A banner or protocol reply read on a declared TCP port" },
    MARKER: { description: "The boot marker on the serial console" },
    MACHINE: { description: "The machine's own state (powered off or crashed during the check)" },
  },
});

@ObjectType({ description: "One thing the boot check saw" })
export class BootEvidence {
  @Field(() => EvidenceKind)
  kind: EvidenceKind;

  @Field({ description: "The check passed (a prompt was read, a service answered)" })
  ok: boolean;

  @Field({ description: "A failure signature: this alone makes the verdict FAILED" })
  failure: boolean;

  @Field({ description: "What was seen, in words" })
  detail: string;

  @Field(() => Date)
  at: Date;
}

@ObjectType({ description: "Proof that a restore point boots: recovered in isolation, watched, destroyed" })
export class BackupVerification {
  @Field(() => ID)
  id: string;

  @Field(() => VerificationStatus)
  status: VerificationStatus;

  @Field(() => Number, { nullable: true, description: "Seconds from power-on to the first positive boot evidence (VERIFIED only)" })
  bootSeconds: number | null;

  @Field(() => [BootEvidence], { description: "What the check saw, in order" })
  evidence: BootEvidence[];

  @Field(() => String, { nullable: true, description: "Text read from the last screenshot" })
  screenText: string | null;

  @Field(() => String, { nullable: true, description: "Presigned GET URL of the PNG screenshot (short-lived)" })
  screenshotUrl: string | null;

  @Field(() => String, { nullable: true, description: "FAILED: the failure evidence in words; INCONCLUSIVE: what was missing" })
  failureReason: string | null;

  @Field(() => Date, { nullable: true })
  startedAt: Date | null;

  @Field(() => Date, { nullable: true })
  checkedAt: Date | null;
}
