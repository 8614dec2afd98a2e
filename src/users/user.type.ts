import { Field, ID, ObjectType, registerEnumType } from "type-graphql";
import { USER_ROLES, type UserRole as UserRoleName } from "../db/schema/users";

export const UserRole = Object.fromEntries(USER_ROLES.map((r) => [r, r])) as { [K in UserRoleName]: K };
registerEnumType(UserRole, {
  name: "UserRole",
  description: "CUSTOMER: every account the API creates. SUPPORT and ADMIN are given by `npm run admin` on the server, never by the API.",
});

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

  @Field(() => UserRole, { description: "CUSTOMER, SUPPORT or ADMIN" })
  role: UserRoleName;
}
