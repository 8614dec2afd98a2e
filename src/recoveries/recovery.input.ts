import { ArgsType, Field, ID, InputType, Int } from "type-graphql";
import { PageArgsInput } from "../graphql/connection";
import { RecoveryTarget } from "./recovery.type";

@InputType()
export class StartRecoveryInput {
  @Field(() => ID, { description: "A COMPLETED, restorable backup of yours" })
  backupId: string;

  @Field(() => RecoveryTarget, { nullable: true, description: "Default: the server's (LOCAL unless AWS is configured)" })
  target?: RecoveryTarget;

  @Field({ nullable: true, description: "IPv4 CIDR allowed to reach the machine (AWS); default: the server's setting, else your address" })
  allowedCidr?: string;

  @Field({
    nullable: true,
    description:
      "Let the recovered machine open connections to the internet (default false: it reaches nothing). AWS only (its security group keeps egress); LOCAL refuses it with BAD_USER_INPUT, because QEMU's user network would expose the host",
  })
  allowInternet?: boolean;

  @Field(() => [Int], {
    nullable: true,
    description: "The machine's declared TCP ports: the only ones that answer through its private access point (default 22, 3389, 445; 1–16 distinct ports 1–65535)",
  })
  ports?: number[] | null;
}

@InputType({ description: "Filters for `recoveries`; all optional, combined with AND" })
export class RecoveryFilter {
  @Field({ nullable: true, description: "true: only recoveries still under way (PENDING to CHECKING); false: only finished ones" })
  active?: boolean;

  @Field(() => ID, { nullable: true, description: "Only recoveries of this backup" })
  backupId?: string;
}

@ArgsType()
export class RecoveriesArgs extends PageArgsInput {
  @Field(() => RecoveryFilter, { nullable: true })
  filter?: RecoveryFilter;
}
