import { GraphQLRequestError } from "../client/graphql-client";
import { ReauthenticateDocument } from "../client/generated/graphql";
import { authedClient } from "./api-client";
import type { CommandContext } from "./command";
import { CliError } from "./errors";
import { promptHidden, readFirstLine } from "./prompts";

/**
 * Fresh authentication from the command line (issue 18): a command the API answers with
 * REAUTH_REQUIRED (deleting a restore point, keeping fewer, …) asks for the password — a hidden
 * prompt on a terminal, else the first line of stdin with --password-stdin — re-enters it on this
 * session (reauthenticate) and is run once more.
 */

export const isReauthRequired = (err: unknown): boolean => err instanceof GraphQLRequestError && err.code === "REAUTH_REQUIRED";

export const REAUTH_NO_TTY =
  "This needs your password again (fresh authentication, so a stolen session cannot delete your backups), and stdin is not a terminal: pipe the password with --password-stdin (e.g. printf '%s\\n' \"$PASS\" | reclo … --password-stdin), or run the command on a terminal";

/** Asks for the password and records a fresh authentication on this session. */
export async function reauthenticate(ctx: CommandContext): Promise<void> {
  const { io, values, settings } = ctx;
  let password: string;
  if (values["password-stdin"]) password = await readFirstLine(io.stdin);
  else if (io.stdin.isTTY) {
    io.stderr.write("This needs your password again (fresh authentication, so a stolen session cannot delete your backups).\n");
    password = await promptHidden(io, "Password: ");
  } else throw new CliError(REAUTH_NO_TTY, "REAUTH_REQUIRED");
  if (!password) throw new CliError("No password given: nothing was changed", "REAUTH_REQUIRED");
  try {
    await authedClient(settings).request(ReauthenticateDocument, { password });
  } catch (err) {
    // A wrong password is UNAUTHENTICATED (reason BAD_CREDENTIALS): the session itself is still good.
    if (err instanceof GraphQLRequestError && err.code === "UNAUTHENTICATED" && err.extensions?.reason === "BAD_CREDENTIALS")
      throw new CliError("Wrong password: nothing was changed", "UNAUTHENTICATED");
    throw err;
  }
}

/** Runs `run`; on REAUTH_REQUIRED asks for the password, reauthenticates and runs it once more. */
export async function withFreshAuth<T>(ctx: CommandContext, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (!isReauthRequired(err)) throw err;
    await reauthenticate(ctx);
    return run();
  }
}
