import { Field, ID, ObjectType, registerEnumType } from "type-graphql";
import { Connection } from "../graphql/connection";
import { UserRole } from "../users/user.type";
import type { UserRole as UserRoleName } from "../db/schema";

export const GrantScope = { READ: "READ", READ_AND_RETRY: "READ_AND_RETRY" } as const;
registerEnumType(GrantScope, {
  name: "GrantScope",
  description: "READ: support may look at your account. READ_AND_RETRY: also retry or cancel your recoveries.",
});

export const GrantStatus = { LIVE: "LIVE", EXPIRED: "EXPIRED", REVOKED: "REVOKED" } as const;
registerEnumType(GrantStatus, { name: "GrantStatus", description: "LIVE until it expires or you revoke it" });

@ObjectType({ description: "Your consent for ReClo support to look at your account for a while" })
export class SupportGrant {
  @Field(() => ID)
  id: string;

  @Field(() => GrantScope)
  scope: keyof typeof GrantScope;

  @Field({ description: "Your words for support" })
  note: string;

  @Field()
  createdAt: Date;

  @Field()
  expiresAt: Date;

  @Field(() => Date, { nullable: true })
  revokedAt: Date | null;

  @Field(() => GrantStatus, { description: "LIVE, EXPIRED or REVOKED, now" })
  status: keyof typeof GrantStatus;
}

export const SupportGrantConnection = Connection("SupportGrant", SupportGrant);

@ObjectType({ description: "Who did something: the account holder, a support engineer or an admin (never their e-mail address)" })
export class AuditActor {
  @Field(() => ID)
  id: string;

  @Field()
  username: string;

  @Field(() => UserRole, { description: "Their role when they did it" })
  role: UserRoleName;
}

@ObjectType({ description: "One entry of the append-only audit log: who did what on whose account, when and from where" })
export class AuditEvent {
  @Field(() => ID)
  id: string;

  @Field({ description: 'Dotted verb: "auth.login", "auth.login_failed", "auth.logout", "auth.password_changed", "grant.create", "backup.delete", "support.read"…' })
  action: string;

  @Field(() => String, { nullable: true, description: 'What it touched, e.g. "Backup:<id>"' })
  target: string | null;

  @Field(() => String, { nullable: true, description: "Anything else recorded with it, as a JSON object's text (never secrets)" })
  detail: string | null;

  @Field(() => AuditActor, { nullable: true, description: "Who did it; null when nobody was signed in (a failed login) or the actor's account is gone" })
  actor: AuditActor | null;

  @Field(() => ID, { description: "Whose account it is about" })
  userId: string;

  @Field(() => String, { nullable: true, description: "The client address the API saw" })
  ip: string | null;

  @Field(() => String, { nullable: true, description: "The API request's id (X-Request-Id)" })
  requestId: string | null;

  @Field()
  at: Date;
}

export const AuditEventConnection = Connection("AuditEvent", AuditEvent);
