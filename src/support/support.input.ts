import { ArgsType, Field, ID, InputType, Int } from "type-graphql";
import { PageArgsInput } from "../graphql/connection";
import { GrantScope } from "./support.type";

@InputType()
export class GrantSupportAccessInput {
  @Field(() => Int, { nullable: true, description: "How long support may look, in minutes: 5 to 10080 (7 days); 60 when not given" })
  minutes?: number | null;

  @Field(() => GrantScope, { nullable: true, description: "READ (the default) or READ_AND_RETRY" })
  scope?: keyof typeof GrantScope | null;

  @Field(() => String, { nullable: true, description: "What support should look at (at most 500 characters)" })
  note?: string | null;
}

@ArgsType()
export class AuditLogArgs extends PageArgsInput {
  @Field(() => ID, {
    nullable: true,
    description: "ADMIN only: this account's events (omit it for every account's). Anyone else gets their own log and FORBIDDEN for another account's id.",
  })
  userId?: string | null;
}
