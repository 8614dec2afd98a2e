import { Field, InputType } from "type-graphql";

@InputType()
export class CreateAgentKeyInput {
  @Field({ description: "The source the key may back up (it need not exist yet: the agent's first check-in creates it)" })
  sourceName: string;

  @Field(() => String, { nullable: true, description: "What it is for, e.g. the server's name (at most 255 characters)" })
  note?: string | null;
}
