import type { ParseArgsConfig } from "node:util";
import { DeleteBackupDocument, RestoreFromTrashDocument, RetentionPolicyDocument, SetRetentionPolicyDocument, TrashDocument } from "../client/generated/graphql";
import { authedClient } from "./api-client";
import type { CommandContext } from "./command";
import { UsageError } from "./errors";
import { formatDate, printTable } from "./format";

/**
 * Deletion defense from the command line (issue 18): `reclo backups delete`, `reclo retention`,
 * and `reclo trash` (list, restore). Deleting and keeping less need the password again (main.ts
 * asks for it on REAUTH_REQUIRED, see fresh-auth.ts) and wait in the trash for DELETION_DELAY.
 */

type Options = NonNullable<ParseArgsConfig["options"]>;

const UNDO = (id: string) => `Undo it before then: reclo trash restore ${id}`;

export const TRASH_USAGE: Record<string, string> = {
  trash: `Usage: reclo trash [--json] [--url URL]
       reclo trash restore ID [--json] [--url URL]

What you deleted (restore points, retention shortenings, and whatever else the server puts there)
that has not taken effect yet: each waits DELETION_DELAY (72 hours by default) before it happens,
and you are e-mailed at once. A restore point in the trash can still be recovered from.

  (none)    The list: ID, kind, what, who asked (and from where), when, when it takes effect
  restore   Take ID out of the trash: the deletion or shortening will not happen

Options:
  --json      JSON on stdout
  --url URL   GraphQL endpoint
`,
  retention: `Usage: reclo retention [show] [--json] [--url URL]
       reclo retention set --weekly-fulls N --days N [--password-stdin] [--json] [--url URL]

How many weekly FULL backups and days of restore points the backup maintenance keeps. Keeping more
applies at once; keeping less (or a first policy: none keeps everything) needs your password
again and waits in the trash for DELETION_DELAY (reclo trash restore undoes it).
`,
};

export const FRESH_AUTH_HELP = `Deleting and keeping less need your password again (fresh authentication): a hidden prompt on a
terminal; without one, pipe it with --password-stdin.`;

export const TRASH_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  trash: { options: { json: { type: "boolean" } }, positionals: true, run: trashCommand },
  retention: { options: { json: { type: "boolean" }, "weekly-fulls": { type: "string" }, days: { type: "string" } }, positionals: true, run: retentionCommand },
};

async function trashCommand({ io, values, positionals, settings }: CommandContext): Promise<number> {
  const [sub, ...rest] = positionals;
  const json = values.json === true;
  const client = authedClient(settings);
  if (sub === undefined) {
    const items = (await client.request(TrashDocument, {})).trash;
    if (json) io.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
    else if (!items.length) io.stdout.write("The trash is empty.\n");
    else {
      printTable(
        io.stdout,
        ["ID", "KIND", "WHAT", "REQUESTED BY", "REQUESTED AT", "TAKES EFFECT AT"],
        items.map((i) => [i.id, i.kind, i.what, i.requestedBy ?? "-", formatDate(i.requestedAt), formatDate(i.effectiveAt)]),
      );
      io.stdout.write("Undo one before it takes effect: reclo trash restore ID\n");
    }
    return 0;
  }
  if (sub === "restore") {
    if (rest.length !== 1) throw new UsageError("restore needs the item's ID (reclo trash)", "trash");
    const item = (await client.request(RestoreFromTrashDocument, { id: rest[0]! })).restoreFromTrash;
    if (json) io.stdout.write(`${JSON.stringify(item, null, 2)}\n`);
    else io.stdout.write(`Restored from the trash (${item.kind}): ${item.what}. It will not be deleted or changed.\n`);
    return 0;
  }
  throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}: reclo trash [restore ID]`, "trash");
}

/** `reclo backups delete ID`: into the trash (a COMPLETED restore point) or gone at once (an unfinished upload). */
export async function deleteBackupCommand({ io, values, positionals, settings }: CommandContext): Promise<number> {
  const id = positionals[1];
  if (!id || positionals.length !== 2) throw new UsageError("reclo backups delete BACKUP_ID [--password-stdin]");
  const b = (await authedClient(settings).request(DeleteBackupDocument, { id })).deleteBackup;
  if (values.json) io.stdout.write(`${JSON.stringify(b, null, 2)}\n`);
  else if (b.deleteAfter)
    io.stdout.write(
      `Restore point ${b.id} of ${b.sourceName} is in the trash: it will be deleted on ${formatDate(b.deleteAfter)}. Until then it stays restorable and you can recover from it.\n${UNDO(b.id)} (reclo trash lists what is pending)\n`,
    );
  else io.stdout.write(`Backup ${b.id} of ${b.sourceName} was never finished (${b.status}): deleted at once, there was nothing to restore.\n`);
  return 0;
}

async function retentionCommand({ io, values, positionals, settings }: CommandContext): Promise<number> {
  const [sub = "show", ...rest] = positionals;
  if (rest.length) throw new UsageError(`unexpected ${JSON.stringify(rest[0])}`, "retention");
  const client = authedClient(settings);
  if (sub === "show") {
    const policy = (await client.request(RetentionPolicyDocument, {})).retentionPolicy;
    if (values.json) io.stdout.write(`${JSON.stringify(policy, null, 2)}\n`);
    else if (!policy) io.stdout.write("No retention policy: every restore point is kept.\n");
    else {
      io.stdout.write(`Keeping ${policy.keepWeeklyFull} weekly FULL backups and ${policy.keepDaily} days of restore points.\n`);
      if (policy.pendingEffectiveAt)
        io.stdout.write(`Pending (in the trash): ${policy.pendingKeepWeeklyFull} weekly fulls and ${policy.pendingKeepDaily} days from ${formatDate(policy.pendingEffectiveAt)}.\n`);
    }
    return 0;
  }
  if (sub === "set") {
    if (values["weekly-fulls"] === undefined || values.days === undefined) throw new UsageError("set needs --weekly-fulls N and --days N", "retention");
    // The bounds are the server's (BAD_USER_INPUT names them).
    const input = { keepWeeklyFull: wholeNumber(values["weekly-fulls"], "weekly-fulls"), keepDaily: wholeNumber(values.days, "days") };
    const policy = (await client.request(SetRetentionPolicyDocument, { input })).setRetentionPolicy;
    if (values.json) io.stdout.write(`${JSON.stringify(policy, null, 2)}\n`);
    else if (policy.pendingEffectiveAt) {
      const item = (await client.request(TrashDocument, {})).trash.find((i) => i.kind === "RETENTION_POLICY");
      io.stdout.write(
        `Keeping less is in the trash: from ${formatDate(policy.pendingEffectiveAt)} ReClo keeps ${policy.pendingKeepWeeklyFull} weekly fulls and ${policy.pendingKeepDaily} days; until then the current policy (${policy.keepWeeklyFull} / ${policy.keepDaily}) stays in force.\n${item ? UNDO(item.id) : "Undo it before then: reclo trash restore ID (see reclo trash)"}\n`,
      );
    }
    else io.stdout.write(`Keeping ${policy.keepWeeklyFull} weekly FULL backups and ${policy.keepDaily} days of restore points, from now on.\n`);
    return 0;
  }
  throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}: show or set`, "retention");
}

function wholeNumber(raw: string | boolean | undefined, flag: string): number {
  if (typeof raw !== "string" || !/^\d{1,9}$/.test(raw)) throw new UsageError(`--${flag} must be a whole number`, "retention");
  return Number(raw);
}
