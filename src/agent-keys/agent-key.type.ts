import { Field, ID, ObjectType } from "type-graphql";

@ObjectType({ description: "A key a source's backup agent uses instead of a session: it can only back up that one source (never delete, change retention, recover or read other sources)" })
export class AgentKey {
  @Field(() => ID)
  id: string;

  @Field({ description: "The one source it may back up" })
  sourceName: string;

  @Field(() => String, { nullable: true })
  note: string | null;

  @Field()
  createdAt: Date;

  @Field(() => Date, { nullable: true, description: "Last time it was used (to the minute)" })
  lastUsedAt: Date | null;

  @Field(() => String, { nullable: true, description: "The address it was last used from" })
  lastUsedIp: string | null;

  @Field(() => Date, { nullable: true, description: "Revoked: it no longer authenticates" })
  revokedAt: Date | null;
}

@ObjectType({ description: "A new agent key and its secret: shown in this response only (only its hash is stored)" })
export class CreatedAgentKey {
  @Field(() => AgentKey)
  agentKey: AgentKey;

  @Field({ description: "The secret (rak_…) for the agent's configuration or RECLO_AGENT_KEY: save it now, it is never shown again" })
  secret: string;
}
