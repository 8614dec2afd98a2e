import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { PageArgsInput } from "../graphql/connection";
import { User } from "../users/user.type";
import { AuthPayload, PasswordResetRequestPayload, Session, SessionConnection, SignUpPayload } from "./auth.type";
import { LogInInput, ResetPasswordInput, SignUpInput } from "./auth.input";
import type { SessionRow, UserRow } from "../db/schema";
import { auditOwnAction } from "../graphql/audit";
import { forbidden } from "../shared/errors";

/** One text for every accepted sign-up, new e-mail address or not. */
const SIGN_UP_MESSAGE =
  "Sign-up received. If this e-mail address had no account, it has one now: log in with it and your password, and follow the link in the mail we sent to verify the address.";
/** One text for every accepted reset request, registered address or not. */
const RESET_REQUEST_MESSAGE = "If this e-mail address has a ReClo account, a link to choose a new password is on its way to it.";

const toSession = (row: SessionRow, ctx: Context): Session => ({ ...row, current: row.id === ctx.auth?.session.id });

@Resolver()
export class AuthResolver {
  @Mutation(() => SignUpPayload, {
    description:
      "Create an account, then log in with logIn; a verification link is mailed to the address (verifyEmail). The answer does not reveal whether the e-mail address was already registered; a taken username is CONFLICT. Rate limited per address; RATE_LIMITED with reason BUSY (and retryAfterSeconds) when the server's password hashing is at capacity (nothing is counted).",
  })
  async signUp(@Arg("input", () => SignUpInput) input: SignUpInput, @Ctx() ctx: Context): Promise<SignUpPayload> {
    const outcome = await ctx.services.auth.signUp(input, { ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId });
    return { accepted: outcome.accepted, message: SIGN_UP_MESSAGE };
  }

  @Mutation(() => AuthPayload, {
    description:
      "Log in; unknown e-mail and wrong password give the same error. Rate limited per account and per address; RATE_LIMITED with reason BUSY (and retryAfterSeconds) when the server's password hashing is at capacity (nothing is counted: try again after that many seconds).",
  })
  async logIn(@Arg("input", () => LogInInput) input: LogInInput, @Ctx() ctx: Context): Promise<AuthPayload> {
    return ctx.services.auth.logIn(input, { ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId });
  }

  @Authorized()
  @Mutation(() => Date, {
    description:
      "Re-enter your password on this session (fresh authentication): deleting a backup or shortening retention needs one within FRESH_AUTH_WINDOW (else REAUTH_REQUIRED). Rate limited like logIn; a wrong password is UNAUTHENTICATED (reason BAD_CREDENTIALS). Returns when it was recorded.",
  })
  reauthenticate(@Arg("password") password: string, @Ctx() ctx: Context): Promise<Date> {
    if (ctx.actingFor) throw forbidden("Support cannot reauthenticate for a customer");
    return ctx.services.auth.reauthenticate(ctx.auth!, password, { ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId });
  }

  @Authorized()
  @Mutation(() => Boolean, { description: "Revoke this request's token, at once (open subscriptions on it are closed)" })
  async logOut(@Ctx() ctx: Context): Promise<boolean> {
    await ctx.services.auth.logOut(ctx.auth!.session);
    await auditOwnAction(ctx, "auth.logout", `Session:${ctx.auth!.session.id}`);
    return true;
  }

  @Authorized()
  @Mutation(() => Int, { description: "Revoke every token of your account; returns how many were active" })
  async logOutEverywhere(@Ctx() ctx: Context): Promise<number> {
    const revoked = await ctx.services.auth.logOutEverywhere(currentUser(ctx).id);
    await auditOwnAction(ctx, "auth.logout_everywhere", undefined, { sessionsRevoked: revoked });
    return revoked;
  }

  @Authorized()
  @Mutation(() => Session, { description: "Revoke one of your sessions" })
  async revokeSession(@Arg("id", () => ID) id: string, @Ctx() ctx: Context): Promise<Session> {
    const session = toSession(await ctx.services.auth.revokeSession(currentUser(ctx).id, id), ctx);
    await auditOwnAction(ctx, "auth.session_revoked", `Session:${session.id}`);
    return session;
  }

  @Mutation(() => Boolean, {
    description:
      "Verify your e-mail address with the token from the verification mail's link (no login needed). INVALID_TOKEN when the token is unknown, expired or already used (which one is not said). Rate limited per client address.",
  })
  async verifyEmail(@Arg("token") token: string, @Ctx() ctx: Context): Promise<boolean> {
    await ctx.services.accounts.verifyEmail(token, { ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId });
    return true;
  }

  @Authorized()
  @Mutation(() => Boolean, {
    description: "Mail a new verification link to your address; false (nothing sent) when it is already verified. Rate limited per account (RATE_LIMITED).",
  })
  resendVerificationEmail(@Ctx() ctx: Context): Promise<boolean> {
    return ctx.services.accounts.resendVerification(currentUser(ctx));
  }

  @Mutation(() => PasswordResetRequestPayload, {
    description:
      "Forgot your password: mails a reset link (…/reset-password?token=…, valid once, for PASSWORD_RESET_TTL) when the address has an account. The answer is the same either way. Rate limited per client address and per e-mail address.",
  })
  async requestPasswordReset(@Arg("email") email: string, @Ctx() ctx: Context): Promise<PasswordResetRequestPayload> {
    await ctx.services.accounts.requestPasswordReset(email, { ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId });
    return { accepted: true, message: RESET_REQUEST_MESSAGE };
  }

  @Mutation(() => Boolean, {
    description:
      "Set a new password with the token from a reset link: the password policy applies, the link (and any other reset link) stops working, and every session of the account is logged out; log in again with the new password. INVALID_TOKEN when the token is unknown, expired or already used.",
  })
  async resetPassword(@Arg("input", () => ResetPasswordInput) input: ResetPasswordInput, @Ctx() ctx: Context): Promise<boolean> {
    await ctx.services.accounts.resetPassword(input.token, input.newPassword, { ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId });
    return true;
  }

  @Authorized()
  @Query(() => User, { description: "The signed-in user" })
  me(@Ctx() ctx: Context): User {
    return currentUser(ctx);
  }

  @Authorized()
  @Query(() => SessionConnection, { description: "Your login sessions, newest first" })
  async sessions(@Args(() => PageArgsInput) page: PageArgsInput, @Ctx() ctx: Context) {
    const result = await ctx.services.sessions.list(currentUser(ctx).id, page);
    return { ...result, edges: result.edges.map((e) => ({ ...e, node: toSession(e.node, ctx) })) };
  }
}


@Resolver(() => User)
export class UserFieldsResolver {
  @FieldResolver(() => Boolean, {
    description: "True once the address was verified (a verification or password-reset link was followed). Accounts older than verification count as verified.",
  })
  emailVerified(@Root() user: UserRow, @Ctx() ctx: Context): Promise<boolean> {
    return ctx.services.accounts.isVerified(user);
  }
}
