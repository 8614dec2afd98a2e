import { Field, ID, ObjectType } from "type-graphql";
import { User } from "../users/user.type";
import { Connection } from "../graphql/connection";

@ObjectType({ description: "A fresh session token. Send it as `Authorization: Bearer <token>`; it is shown only once." })
export class AuthPayload {
  @Field()
  token: string;

  @Field()
  expiresAt: Date;

  @Field(() => User)
  user: User;
}

@ObjectType({
  description:
    "The answer to signUp. It is the same whether or not the e-mail address already had an account, so it cannot be used to find out who has one: log in (logIn) with the address and password to get a token.",
})
export class SignUpPayload {
  @Field({ description: "True when the request was valid and was processed" })
  accepted: boolean;

  @Field({ description: "What to do next" })
  message: string;
}

@ObjectType({ description: "One of your login sessions" })
export class Session {
  @Field(() => ID)
  id: string;

  @Field()
  createdAt: Date;

  @Field()
  expiresAt: Date;

  @Field(() => Date, { nullable: true })
  revokedAt: Date | null;

  @Field(() => Date, { nullable: true })
  lastUsedAt: Date | null;

  @Field(() => String, { nullable: true })
  ip: string | null;

  @Field(() => String, { nullable: true })
  userAgent: string | null;

  @Field({ description: "True for the session that made this request" })
  current: boolean;
}

export const SessionConnection = Connection("Session", Session);

@ObjectType({
  description:
    "The answer to requestPasswordReset. It is the same whether or not the address has an account: when it has one, a reset link is on its way to it.",
})
export class PasswordResetRequestPayload {
  @Field({ description: "True when the request was valid and was processed" })
  accepted: boolean;

  @Field({ description: "What to do next" })
  message: string;
}
