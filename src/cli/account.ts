import type { ParseArgsConfig } from "node:util";
import { GraphQLRequestError } from "../client/graphql-client";
import { RequestPasswordResetDocument, ResendVerificationEmailDocument, SignUpDocument } from "../client/generated/graphql";
import { anonymousClient, authedClient } from "./api-client";
import { str, type CommandContext } from "./command";
import { CliError, UsageError } from "./errors";
import { ask, promptHidden, readFirstLine } from "./prompts";

/** `reclo signup`, `reclo password reset`, `reclo verify-email --resend`: the account's e-mail from the command line. */

type Options = NonNullable<ParseArgsConfig["options"]>;

export const ACCOUNT_USAGE: Record<string, string> = {
  signup: `Usage: reclo signup [--url URL] [--email EMAIL] [--username NAME]

Creates an account. ReClo mails a link to the address: open it to verify the address (recoveries
need a verified address), then run reclo login. The password comes from RECLO_PASSWORD, else the
first line of stdin when it is not a terminal, else a hidden prompt (asked twice).
`,
  password: `Usage: reclo password reset --email EMAIL [--url URL]

Mails a link to choose a new password to EMAIL, if it has an account (the answer is the same
either way). Open the link, set the new password; every session of the account is logged out.
`,
  "verify-email": `Usage: reclo verify-email --resend [--url URL]

Mails a new verification link to the logged-in account's address (when it is not verified yet).
`,
};

async function askRequired(ctx: CommandContext, flag: string, question: string): Promise<string> {
  const given = str(ctx.values[flag]);
  if (given) return given.trim();
  if (!ctx.io.stdin.isTTY) throw new UsageError(`--${flag} is required when stdin is not a terminal`, "signup");
  const answer = (await ask(ctx.io, question))?.trim();
  if (!answer) throw new UsageError(`--${flag} is required`, "signup");
  return answer;
}

async function newPassword(ctx: CommandContext): Promise<string> {
  const { io } = ctx;
  const fromEnv = io.env.RECLO_PASSWORD;
  if (fromEnv) return fromEnv;
  if (!io.stdin.isTTY) return readFirstLine(io.stdin);
  const first = await promptHidden(io, "Password (12 characters or more): ");
  const again = await promptHidden(io, "Password again: ");
  if (first !== again) throw new CliError("The two passwords are not the same", "BAD_USER_INPUT");
  return first;
}

async function signup(ctx: CommandContext): Promise<number> {
  const { io, settings } = ctx;
  const username = await askRequired(ctx, "username", "Username: ");
  const email = await askRequired(ctx, "email", "Email: ");
  const password = await newPassword(ctx);
  if (!password) throw new CliError("No password given (RECLO_PASSWORD, stdin or the prompt)", "BAD_USER_INPUT");
  try {
    const { signUp } = await anonymousClient(settings).request(SignUpDocument, { input: { username, email, password } });
    io.stdout.write(`${signUp.message}\nCheck the inbox of ${email} for the verification link, then: reclo login --email ${email}\n`);
    return 0;
  } catch (err) {
    if (err instanceof GraphQLRequestError && (err.code === "BAD_USER_INPUT" || err.code === "CONFLICT" || err.code === "RATE_LIMITED"))
      throw new CliError(`Sign-up failed: ${err.message}`, err.code);
    throw err;
  }
}

async function password(ctx: CommandContext): Promise<number> {
  if (ctx.positionals.join(" ") !== "reset") throw new UsageError(ctx.positionals.length ? `unknown: password ${ctx.positionals.join(" ")}` : "missing: reset", "password");
  const email = str(ctx.values.email);
  if (!email) throw new UsageError("--email is required", "password");
  const { requestPasswordReset } = await anonymousClient(ctx.settings).request(RequestPasswordResetDocument, { email });
  ctx.io.stdout.write(`${requestPasswordReset.message}\n`);
  return 0;
}

async function verifyEmail(ctx: CommandContext): Promise<number> {
  if (!ctx.values.resend) throw new UsageError("--resend is the only action (the link itself opens in a browser)", "verify-email");
  const { resendVerificationEmail } = await authedClient(ctx.settings).request(ResendVerificationEmailDocument);
  ctx.io.stdout.write(resendVerificationEmail ? "A new verification link is on its way to your address.\n" : "Your e-mail address is already verified.\n");
  return 0;
}

export const ACCOUNT_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  signup: { options: { email: { type: "string" }, username: { type: "string" } }, run: signup },
  password: { options: { email: { type: "string" } }, positionals: true, run: password },
  "verify-email": { options: { resend: { type: "boolean" } }, run: verifyEmail },
};
