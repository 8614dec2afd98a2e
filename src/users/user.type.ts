import { Field, ID, ObjectType } from "type-graphql";

@ObjectType({ description: "A ReClo account" })
export class User {
  @Field(() => ID)
  id: string;

  @Field()
  username: string;

  @Field({ description: "Normalised (lower-case) e-mail address" })
  email: string;

  @Field()
  createdAt: Date;
}
