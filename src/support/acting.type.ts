import { Field, Int, ObjectType } from "type-graphql";

@ObjectType({ description: "A support grant as support sees it while acting on it" })
export class ActingGrant {
  @Field({ description: "READ, or READ_AND_RETRY (retryRecovery and cancelRecovery allowed)" })
  scope: string;

  @Field({ description: "The customer's words for support" })
  note: string;

  @Field()
  createdAt: Date;

  @Field()
  expiresAt: Date;
}

@ObjectType({ description: "The customer a support session is acting for" })
export class ActingFor {
  @Field()
  email: string;

  @Field()
  username: string;
}

@ObjectType({ description: "Who this request runs as: the signed-in user's role and, for support acting on a grant (X-ReClo-Act-For), whose account and until when" })
export class Viewer {
  @Field({ description: "The signed-in user's role: CUSTOMER, SUPPORT or ADMIN" })
  role: string;

  @Field({ description: "The signed-in user's e-mail address" })
  email: string;

  @Field(() => ActingFor, { nullable: true, description: "The customer whose account this request reads (null: your own)" })
  actingFor: ActingFor | null;

  @Field(() => ActingGrant, { nullable: true, description: "The customer's grant this request acts on (null when not acting)" })
  grant: ActingGrant | null;
}

@ObjectType({ description: "What support sees of a customer without a grant: the address and the account's status, nothing else" })
export class SupportCustomer {
  @Field()
  email: string;

  @Field({ description: "The e-mail address was verified" })
  verified: boolean;

  @Field()
  createdAt: Date;

  @Field(() => Date, { nullable: true, description: "Until when the customer's live grant runs (null: no live grant: ask the customer to grant access)" })
  grantExpiresAt: Date | null;

  @Field(() => String, { nullable: true, description: "The live grant's scope (null: none)" })
  grantScope: string | null;
}

@ObjectType({ description: "Provider resources a recovery created (for cleanup and support)" })
export class RecoveryResourceIds {
  @Field(() => String, { nullable: true, description: "The composed disk image's object key in the bucket" })
  composedKey: string | null;

  @Field(() => String, { nullable: true, description: "EC2 import task id" })
  importTaskId: string | null;

  @Field(() => String, { nullable: true, description: "Image (AMI) id" })
  imageId: string | null;

  @Field(() => [String])
  snapshotIds: string[];

  @Field(() => String, { nullable: true, description: "Provider instance id" })
  instanceId: string | null;

  @Field(() => String, { nullable: true })
  securityGroupId: string | null;
}

@ObjectType({ description: "One step's attempts, from the recovery's timeline" })
export class RecoveryStepAttempts {
  @Field({ description: "The step (recovery state)" })
  step: string;

  @Field(() => Int, { description: "Highest activity attempt seen (1 = first try)" })
  attempts: number;

  @Field(() => Int, { description: "How many times the step was retried" })
  retries: number;

  @Field(() => String, { nullable: true, description: "The last failure's message" })
  lastFailure: string | null;

  @Field(() => Date, { nullable: true })
  lastFailureAt: Date | null;
}

@ObjectType({ description: "What support needs to answer \"why did my recovery fail\": resources, attempts, provider error codes and the Temporal run" })
export class RecoveryDiagnostics {
  @Field()
  state: string;

  @Field(() => String, { nullable: true })
  failureReason: string | null;

  @Field(() => RecoveryResourceIds)
  resources: RecoveryResourceIds;

  @Field(() => [RecoveryStepAttempts])
  attempts: RecoveryStepAttempts[];

  @Field(() => [String], { description: "Provider and error codes found in the failure and the failed attempts (e.g. InvalidAMIID.NotFound, TIMED_OUT)" })
  providerErrorCodes: string[];

  @Field({ description: "Temporal workflow id" })
  workflowId: string;

  @Field(() => String, { nullable: true, description: "Temporal run id of the latest run (null: Temporal has none, or is not reachable)" })
  runId: string | null;

  @Field({ description: "The run's event history in the Temporal UI" })
  historyUrl: string;
}
