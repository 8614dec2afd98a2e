import { Arg, Args, Authorized, Ctx, ID, Int, Mutation, Query, Resolver } from "type-graphql";
import type { Context } from "../graphql/context";
import { currentUser } from "../graphql/context";
import { PageArgsInput } from "../graphql/connection";
import { User } from "../users/user.type";
import { AuthPayload, Session, SessionConnection, SignUpPayload } from "./auth.type";
import { LogInInput, SignUpInput } from "./auth.input";
import type { SessionRow } from "../db/schema";

/** One text for every accepted sign-up, new e-mail address or not. */
const SIGN_UP_MESSAGE = "Sign-up received. If this e-mail address had no account, it has one now: log in with it and your password.";

const toSession = (row: SessionRow, ctx: Context): Session => ({ ...row, current: row.id === ctx.auth?.session.id });

@Resolver()
export class AuthResolver {
  @Mutation(() => SignUpPayload, {
    description:
      "Create an account, then log in with logIn. The answer does not reveal whether the e-mail address was already registered; a taken username is CONFLICT. Rate limited per address; RATE_LIMITED with reason BUSY (and retryAfterSeconds) when the server's password hashing is at capacity (nothing is counted).",
  })
  async signUp(@Arg("input", () => SignUpInput) input: SignUpInput, @Ctx() ctx: Context): Promise<SignUpPayload> {
    const outcome = await ctx.services.auth.signUp(input, { ip: ctx.ip, userAgent: ctx.userAgent });
    return { accepted: outcome.accepted, message: SIGN_UP_MESSAGE };
  }

  @Mutation(() => AuthPayload, {
    description:
      "Log in; unknown e-mail and wrong password give the same error. Rate limited per account and per address; RATE_LIMITED with reason BUSY (and retryAfterSeconds) when the server's password hashing is at capacity (nothing is counted: try again after that many seconds).",
  })
  async logIn(@Arg("input", () => LogInInput) input: LogInInput, @Ctx() ctx: Context): Promise<AuthPayload> {
    return ctx.services.auth.logIn(input, { ip: ctx.ip, userAgent: ctx.userAgent });
  }

  @Authorized()
  @Mutation(() => Boolean, { description: "Revoke this request's token, at once (open subscriptions on it are closed)" })
  async logOut(@Ctx() ctx: Context): Promise<boolean> {
    await ctx.services.auth.logOut(ctx.auth!.session);
    return true;
  }

  @Authorized()
  @Mutation(() => Int, { description: "Revoke every token of your account; returns how many were active" })
  async logOutEverywhere(@Ctx() ctx: Context): Promise<number> {
    return ctx.services.auth.logOutEverywhere(currentUser(ctx).id);
  }

  @Authorized()
  @Mutation(() => Session, { description: "Revoke one of your sessions" })
  async revokeSession(@Arg("id", () => ID) id: string, @Ctx() ctx: Context): Promise<Session> {
    return toSession(await ctx.services.auth.revokeSession(currentUser(ctx).id, id), ctx);
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

