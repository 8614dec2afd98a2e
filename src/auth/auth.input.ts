import { Field, InputType } from "type-graphql";

@InputType()
export class SignUpInput {
  @Field({ description: "3–64 characters: letters, digits, '.', '_', '-'" })
  username: string;

  @Field()
  email: string;

  @Field({ description: "12–128 characters; not a common password; must not contain your username or e-mail" })
  password: string;
}

@InputType()
export class LogInInput {
  @Field()
  email: string;

  @Field()
  password: string;
}

@InputType()
export class ResetPasswordInput {
  @Field({ description: "The token from the reset link (…/reset-password?token=…)" })
  token: string;

  @Field({ description: "12–128 characters; not a common password; must not contain your username or e-mail" })
  newPassword: string;
}
