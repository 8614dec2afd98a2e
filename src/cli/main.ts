import os from "node:os";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { GraphQLRequestError } from "../client/graphql-client";
import { BackupsDocument, LogInDocument, LogOutDocument, MeDocument, ResolveSuspectBackupDocument, type BackupsQuery } from "../client/generated/graphql";
import { runAgent } from "./agent";
import { AGENT_KEY_COMMANDS, AGENT_KEY_USAGE } from "./agent-keys";
import { AGENT_INSTALL_USAGE, SOURCE_COMMANDS, SOURCE_USAGE, agentInstall } from "./sources";
import { runBackup, type BackupKind } from "./backup";
import { CliError, UsageError, describeError, errorCode } from "./errors";
import { positiveInt, str, type CliIo, type CommandContext } from "./command";
import { anonymousClient, authedClient, fetchPages } from "./api-client";
import { ask, promptHidden, readFirstLine } from "./prompts";
import { alarmMarks, formatDate, printTable } from "./format";
import { configDir, readConfig, resolveSettings, writeConfig } from "./config-file";
import { formatBytes, JsonLinesReporter, TtyProgressBar, type Reporter } from "./progress";
import { RECOVERY_COMMANDS, RECOVERY_USAGE } from "./recover";
import { DRILL_COMMANDS, DRILL_USAGE } from "./drills";
import { VERIFY_COMMANDS, VERIFY_USAGE } from "./verify";
import { ACCOUNT_COMMANDS, ACCOUNT_USAGE } from "./account";
import { NOTIFICATION_COMMANDS, NOTIFICATION_USAGE } from "./notifications";
import { SUPPORT_COMMANDS, SUPPORT_USAGE } from "./support";
import { verdictWords } from "../client/verdict-words";
import { UploadPrinter, watchUploads } from "./upload-watch";
import { cliMessage } from "../client/errors";
import { FRESH_AUTH_HELP, TRASH_COMMANDS, TRASH_USAGE, deleteBackupCommand } from "./trash";
import { REAUTH_NO_TTY, isReauthRequired, withFreshAuth } from "./fresh-auth";

export { CliError, UsageError, describeError } from "./errors";
export type { CliIo } from "./command";

/**
 * `reclo`, the Backup Manager and Recovery Manager CLI. It speaks only GraphQL (the generated typed documents) to the
 * API, plus the presigned PUT URLs the API hands out for chunk uploads.
 *
 * Exit codes: 0 ok, 1 error, 2 usage.
 */

const USAGE: Record<string, string> = {
  ...RECOVERY_USAGE,
  ...DRILL_USAGE,
  ...VERIFY_USAGE,
  ...SOURCE_USAGE,
  ...ACCOUNT_USAGE,
  ...NOTIFICATION_USAGE,
  ...SUPPORT_USAGE,
  ...AGENT_KEY_USAGE,
  ...TRASH_USAGE,
  main: `Usage: reclo <command> [options]

Commands:
  signup    Create an account (a link to verify the address is mailed)
  login     Log in and save the session token
  logout    Revoke the session token and forget it
  whoami    Show who the saved token belongs to
  password  reset --email EMAIL: mail a link to choose a new password
  verify-email --resend: mail a new address-verification link
  backup    Back up a disk image file or block device
  backups   List your backups, with their boot check; backups delete ID (to the trash)
  trash     What you deleted, before it takes effect (72 h); trash restore ID undoes it
  retention show|set how many restore points to keep (keeping less waits in the trash)
  verify    Prove a restore point starts (boot it in isolation, collect evidence)
  agent     Run backups on the server's schedule (agent install: as a systemd service)
  agent-key create|list|revoke: keys that can only back up one source (what the agent uses)
  sources   Your sources: schedule, next and last backup, last seen, missed (sources delete NAME: to the trash)
  schedule  show|set a source's backup schedule

  recover     Recover a restore point into a new machine, with live progress
  recoveries  List your recoveries
  instances   List your recovered machines
  instance    show|start|stop|terminate one machine

  drills      Drill history (verdict, RTO, evidence); drills policy / drills run

  notifications  Your notifications (--unread); webhooks list|add|remove|test

  support   grant|list|revoke: let ReClo support look at your account for a while
  activity  Your account's audit log: logins, grants, what support looked at, deletions

Global options:
  --url URL         GraphQL endpoint (else RECLO_URL, the saved one, or http://127.0.0.1:4000/graphql)
  --password-stdin  When the server asks for your password again (deleting, keeping less): read it
                    from the first line of stdin instead of a hidden prompt on the terminal
  -h, --help        Help for a command: reclo <command> --help

${FRESH_AUTH_HELP}

Environment: RECLO_CONFIG_DIR (default $XDG_CONFIG_HOME/reclo or ~/.config/reclo), RECLO_URL,
RECLO_TOKEN (overrides the saved token), RECLO_PASSWORD (for login).
`,
  login: `Usage: reclo login [--url URL] [--email EMAIL]

Logs in and saves { url, token, email, expiresAt } to <config dir>/config.json (mode 0600).
The password comes from RECLO_PASSWORD, else the first line of stdin when it is not a terminal,
else a hidden prompt.
`,
  logout: `Usage: reclo logout [--url URL]

Revokes the session token on the server and removes it from the config file.
`,
  whoami: `Usage: reclo whoami [--url URL]

Shows the account the token belongs to.
`,
  backup: `Usage: reclo backup <image-file-or-block-device> [options]

Options:
  --source NAME      Source (machine) name (default: this host name, ${os.hostname()})
  --full             Take a FULL backup
  --incremental      Take an INCREMENTAL backup against the latest completed one
                     (neither: what the server's schedule plans for a backup now: FULL when
                     no COMPLETED full since the weekly FULL slot or no intact chain, else
                     INCREMENTAL; see reclo schedule show)
  --concurrency N    Parallel chunk uploads (default 4)
  --json             JSON lines on stdout (the default when stderr is not a terminal)
  --url URL          GraphQL endpoint

An interrupted backup resumes when run again on the unchanged image.
Testing knob: RECLO_UPLOAD_DELAY_MS=<ms> sleeps before every chunk PUT.
`,
  backups: `Usage: reclo backups [--source NAME] [--limit N] [--json] [--url URL]
       reclo backups --watch [--source NAME] [--json] [--url URL]
       reclo backups resolve BACKUP_ID --safe|--encrypted [--url URL]
       reclo backups delete BACKUP_ID [--password-stdin] [--json] [--url URL]

Lists your backups, newest first (default limit 20), with each one's latest boot check: verified
(and what proved it), FAILED (and what was seen), inconclusive, or not verified. The evidence in
full and the screenshot: reclo verify <backup-id> --show.

--watch follows uploads live until they end: every upload in progress, or with --source that
server's latest upload (the next one if it has none). Progress, rate and time left; a failed or
abandoned upload with its reason. One line per update (a redrawn line on a terminal; --json: JSON
lines). Exits 1 if an upload it followed failed or was abandoned.

The encryption alarm: an incremental that changed most of the disk into random-looking data
(possible ransomware) is marked SUSPECT, and the newest clean restore point before it "last clean";
retention keeps the clean ones before it: resolve --safe (the change was legitimate; lifts that hold,
so it needs your password re-entered) or --encrypted (recover from the last clean one, which
retention then keeps until you delete it).

delete puts a restore point in the trash: it is deleted after DELETION_DELAY (72 hours by default),
stays restorable until then, you are e-mailed at once, and reclo trash restore BACKUP_ID undoes it.
${FRESH_AUTH_HELP}
`,
  agent: `Usage: reclo agent --image PATH [options]
       reclo agent install --image PATH [--source NAME] [--user NAME] [--agent-key KEY] [--print] [--root DIR]

Runs in the foreground and backs the image up on the schedule the server keeps for the source
(reclo schedule set; the default for a new source: daily 02:00, FULL on Sunday, in this machine's
time zone). It checks in every minute (the server records it as seen and answers the schedule, so
a change is followed without a restart), sleeps until the next slot, and takes the backup the
server plans for that slot (FULL or INCREMENTAL). A failed run is retried after 15 minutes (3
tries). Logs JSON lines; SIGINT/SIGTERM stop it.

Options:
  --image PATH       Image file or block device (required)
  --source NAME      Source name (default: this host name)
  --concurrency N    Parallel chunk uploads (default 4)
  --url URL          GraphQL endpoint

Testing knob: RECLO_AGENT_POLL_SECONDS (default 60): the check-in interval.

${AGENT_INSTALL_USAGE}`,
};

const GLOBAL_OPTIONS = { url: { type: "string" }, "password-stdin": { type: "boolean" }, help: { type: "boolean", short: "h" } } as const;

const COMMANDS: Record<string, { options: NonNullable<ParseArgsConfig["options"]>; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  login: { options: { email: { type: "string" } }, run: login },
  logout: { options: {}, run: logout },
  whoami: { options: {}, run: whoami },
  backup: {
    options: {
      source: { type: "string" },
      full: { type: "boolean" },
      incremental: { type: "boolean" },
      json: { type: "boolean" },
      concurrency: { type: "string" },
    },
    positionals: true,
    run: backup,
  },
  backups: {
    options: { source: { type: "string" }, json: { type: "boolean" }, limit: { type: "string" }, watch: { type: "boolean" }, safe: { type: "boolean" }, encrypted: { type: "boolean" } },
    positionals: true,
    run: backups,
  },
  agent: {
    options: { image: { type: "string" }, source: { type: "string" }, concurrency: { type: "string" }, user: { type: "string" }, print: { type: "boolean" }, root: { type: "string" }, "agent-key": { type: "string" } },
    positionals: true,
    run: agent,
  },
  ...SOURCE_COMMANDS,
  ...RECOVERY_COMMANDS,
  ...DRILL_COMMANDS,
  ...ACCOUNT_COMMANDS,
  ...VERIFY_COMMANDS,
  ...NOTIFICATION_COMMANDS,
  ...SUPPORT_COMMANDS,
  ...AGENT_KEY_COMMANDS,
  ...TRASH_COMMANDS,
};

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[], io: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const name = argv[0];
  if (!name || name === "help" || name === "--help" || name === "-h") {
    const topic = name === "help" && argv[1] && USAGE[argv[1]] ? argv[1] : "main";
    (name ? io.stdout : io.stderr).write(USAGE[topic]!);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`reclo: unknown command ${JSON.stringify(name)}\n\n${USAGE.main}`);
    return 2;
  }
  let ctx: CommandContext;
  try {
    const parsed = parseArgs({ args: argv.slice(1), options: { ...GLOBAL_OPTIONS, ...command.options }, allowPositionals: command.positionals ?? false, strict: true });
    if (parsed.values.help) {
      io.stdout.write(USAGE[name]!);
      return 0;
    }
    const dir = configDir(io.env);
    ctx = { io, values: parsed.values as CommandContext["values"], positionals: parsed.positionals, dir, settings: resolveSettings(dir, parsed.values.url as string | undefined, io.env) };
  } catch (err) {
    io.stderr.write(`reclo ${name}: ${(err as Error).message}\n\n${USAGE[name]}`);
    return 2;
  }
  try {
    // REAUTH_REQUIRED (deleting, keeping less): the password again, then the command once more.
    // Such a command stops at that one mutation, so running it again repeats nothing.
    return await withFreshAuth(ctx, () => command.run(ctx));
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`reclo ${name}: ${err.message}\n\n${USAGE[name]}`);
      return 2;
    }
    io.stderr.write(`reclo: ${describeError(err, ctx.settings)}\n`);
    return 1;
  }
}

// ---------------------------------------------------------------------------------------------
// login / logout / whoami

async function login({ io, values, dir, settings }: CommandContext): Promise<number> {
  let email = str(values.email) ?? settings.config.email;
  if (!email) {
    if (!io.stdin.isTTY) throw new UsageError("--email is required when stdin is not a terminal");
    email = (await ask(io, "Email: "))?.trim();
  }
  if (!email) throw new UsageError("an e-mail address is required");
  let password = io.env.RECLO_PASSWORD;
  if (password === undefined || password === "") {
    password = io.stdin.isTTY ? await promptHidden(io, "Password: ") : await readFirstLine(io.stdin);
  }
  if (!password) throw new CliError("No password given (RECLO_PASSWORD, stdin or the prompt)", "BAD_USER_INPUT");

  let result;
  try {
    result = (await anonymousClient(settings).request(LogInDocument, { input: { email, password } })).logIn;
  } catch (err) {
    if (err instanceof GraphQLRequestError && err.code === "RATE_LIMITED" && err.extensions?.reason === "BUSY")
      throw new CliError(`Login failed: ${cliMessage({ code: err.code, message: err.message, status: err.status, extensions: err.extensions }, settings)}`, err.code);
    if (err instanceof GraphQLRequestError && (err.code === "UNAUTHENTICATED" || err.code === "BAD_USER_INPUT" || err.code === "RATE_LIMITED"))
      throw new CliError(`Login failed: ${err.message}`, err.code);
    throw err;
  }
  writeConfig(dir, { ...readConfig(dir), url: settings.url, token: result.token, email: result.user.email, expiresAt: result.expiresAt });
  io.stdout.write(`Logged in as ${result.user.email} (token expires ${formatDate(result.expiresAt)})\n`);
  if (settings.tokenSource === "RECLO_TOKEN") io.stderr.write("Note: RECLO_TOKEN is set and overrides the saved token.\n");
  return 0;
}

async function logout({ io, dir, settings }: CommandContext): Promise<number> {
  if (!settings.token) {
    io.stdout.write("Not logged in.\n");
    return 0;
  }
  let revokeError: unknown = null;
  try {
    await authedClient(settings).request(LogOutDocument);
  } catch (err) {
    if (!(err instanceof GraphQLRequestError && err.code === "UNAUTHENTICATED")) revokeError = err;
  }
  if (settings.tokenSource === "config") {
    const cfg = readConfig(dir);
    writeConfig(dir, { ...cfg, token: undefined, expiresAt: undefined });
  }
  if (revokeError) {
    io.stderr.write(`reclo: the token was removed locally but could not be revoked on the server: ${describeError(revokeError, settings)}\n`);
    return 1;
  }
  io.stdout.write(settings.tokenSource === "RECLO_TOKEN" ? "Logged out (the RECLO_TOKEN session is revoked; unset RECLO_TOKEN).\n" : "Logged out.\n");
  return 0;
}

async function whoami({ io, settings }: CommandContext): Promise<number> {
  const { me } = await authedClient(settings).request(MeDocument);
  const expires = settings.tokenSource === "config" && settings.config.expiresAt ? ` (token expires ${formatDate(settings.config.expiresAt)})` : "";
  io.stdout.write(`Logged in as ${me.email} (user ${me.username}) at ${settings.url}${expires}\n`);
  if (!me.emailVerified) io.stdout.write("Your e-mail address is not verified yet: open the link in the mail ReClo sent you (reclo verify-email --resend sends a new one).\n");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// backup / backups

async function backup({ io, values, positionals, dir, settings }: CommandContext): Promise<number> {
  if (positionals.length !== 1) throw new UsageError(positionals.length ? "give exactly one image file or block device" : "missing the image file or block device");
  if (values.full && values.incremental) throw new UsageError("--full and --incremental exclude each other");
  const kind: BackupKind | undefined = values.full ? "FULL" : values.incremental ? "INCREMENTAL" : undefined;
  const concurrency = positiveInt(values.concurrency, "concurrency", 4, 64);
  const sourceName = str(values.source) ?? os.hostname();
  const json = Boolean(values.json) || !io.stderr.isTTY;
  const reporter: Reporter = json ? new JsonLinesReporter(io.stdout) : new TtyProgressBar(io.stderr, io.stdout);
  const delay = io.env.RECLO_UPLOAD_DELAY_MS ? Number(io.env.RECLO_UPLOAD_DELAY_MS) : 0;

  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await runBackup({
      // While the server or a service it needs is down, each call is retried (RECLO_RETRY_SECONDS), and so are chunk PUTs.
      client: authedClient(settings, ({ delayMs, reason }) => reporter.info(`${reason}; retrying in ${(delayMs / 1000).toFixed(1)} s`)),
      retryBudgetMs: settings.retryBudgetMs,
      imagePath: positionals[0]!,
      sourceName,
      kind,
      concurrency,
      configDir: dir,
      serverUrl: settings.url,
      onEvent: (e) => reporter.onEvent(e),
      log: (m) => reporter.info(m),
      signal: ac.signal,
      uploadDelayMs: Number.isFinite(delay) && delay > 0 ? delay : 0,
    });
    reporter.close();
    return 0;
  } catch (err) {
    const message = describeError(err, settings);
    reporter.error({ event: "error", message, code: errorCode(err) });
    reporter.close();
    if (json) io.stderr.write(`reclo: ${message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

type BackupNode = BackupsQuery["backups"]["edges"][number]["node"];

async function backups(ctx: CommandContext): Promise<number> {
  const { io, values, settings } = ctx;
  if (values.watch) return watchBackups(ctx);
  if (ctx.positionals[0] === "resolve") return resolveSuspect(ctx);
  if (ctx.positionals[0] === "delete") return deleteBackupCommand(ctx);
  if (ctx.positionals.length) throw new UsageError(`unexpected ${JSON.stringify(ctx.positionals[0])}: reclo backups [resolve BACKUP_ID --safe|--encrypted | delete BACKUP_ID]`);
  const limit = positiveInt(values.limit, "limit", 20, 100_000);
  const client = authedClient(settings);
  const source = str(values.source);
  const rows = await fetchPages<BackupNode>(limit, async (first, after) => (await client.request(BackupsDocument, { first, after, filter: source ? { sourceName: source } : undefined })).backups);
  if (values.json) {
    io.stdout.write(`${JSON.stringify(rows.map((r) => ({ ...r, parentId: r.parent?.id ?? null })), null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    io.stdout.write(source ? `No backups of ${source}.\n` : "No backups yet.\n");
    return 0;
  }
  const marks = alarmMarks(rows);
  const header = ["ID", "KIND", "STATUS", "SOURCE", "SIZE", "SENT", "CREATED", "BOOT CHECK"];
  const cells = rows.map((r) => [r.id, r.kind, r.status, r.sourceName, formatBytes(r.imageSize), formatBytes(r.uploadedBytes), formatDate(r.createdAt), clipCell(verdictWords(r.verification).short, 90)]);
  // The alarm column appears only when the encryption alarm has something to say.
  printTable(io.stdout, marks.size ? [...header, "ALARM"] : header, marks.size ? cells.map((c, i) => [...c, marks.get(rows[i]!.id) ?? ""]) : cells, { right: [4, 5] });
  if (rows.some((r) => r.verification)) io.stdout.write("Evidence and screenshot of a boot check: reclo verify <backup-id> --show\n");
  for (const r of rows.filter((r) => r.suspect && !r.suspect.verdict))
    io.stdout.write(`WARNING: possible ransomware encryption of ${r.sourceName} in ${r.id}: ${r.suspect!.reason}.\n  Answer with reclo backups resolve ${r.id} --safe (legitimate change) or --encrypted.\n`);
  return 0;
}

async function resolveSuspect({ io, values, positionals, settings }: CommandContext): Promise<number> {
  const id = positionals[1];
  if (!id || positionals.length !== 2) throw new UsageError("reclo backups resolve BACKUP_ID --safe|--encrypted");
  if (Boolean(values.safe) === Boolean(values.encrypted)) throw new UsageError("give exactly one of --safe and --encrypted");
  let b;
  try {
    ({ resolveSuspectBackup: b } = await authedClient(settings).request(ResolveSuspectBackupDocument, { id, verdict: values.safe ? "SAFE" : "ENCRYPTED" }));
  } catch (err) {
    // SAFE lifts retention's hold on the clean restore points: the server wants the password re-entered on this session.
    // Where the password can be asked for (a terminal, --password-stdin), main's withFreshAuth asks and runs this again;
    // otherwise say why this command needs it, and how to give it.
    if (isReauthRequired(err) && !values["password-stdin"] && !io.stdin.isTTY)
      throw new CliError(`Marking ${id} safe lets retention delete the clean restore points it holds, so the server asks for your password again first (REAUTH_REQUIRED). ${REAUTH_NO_TTY}`, "REAUTH_REQUIRED");
    throw err;
  }
  io.stdout.write(
    values.safe
      ? `Restore point ${b.id} of ${b.sourceName} marked safe: it counts as clean again, and retention applies as usual.\n`
      : `Restore point ${b.id} of ${b.sourceName} marked ENCRYPTED. Recover from the last clean restore point: reclo recover --source ${b.sourceName}\n` +
          "Retention keeps the clean restore points before it until you delete them.\n",
  );
  return 0;
}

async function watchBackups({ io, values, settings }: CommandContext): Promise<number> {
  if (values.limit !== undefined) throw new UsageError("--limit does not apply to --watch");
  const source = str(values.source);
  const printer = new UploadPrinter(io.stdout, values.json ? "json" : io.stdout.isTTY ? "tty" : "lines");
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const ended = await watchUploads({ client: authedClient(settings), sourceName: source, signal: ac.signal, onUpdate: (u) => printer.update(u) });
    printer.close();
    if (!ended.length && !values.json) io.stdout.write(source ? `No upload of ${source} to follow.\n` : "No uploads in progress.\n");
    const bad = ended.filter((u) => u.status === "FAILED" || u.status === "ABANDONED");
    for (const u of bad) io.stderr.write(`reclo: the upload of ${u.sourceName} ${u.status === "FAILED" ? "failed" : "was abandoned"}: ${u.failureReason ?? "no reason given"}\n`);
    return bad.length ? 1 : 0;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function clipCell(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

// ---------------------------------------------------------------------------------------------
// agent

async function agent(ctx: CommandContext): Promise<number> {
  const { io, values, positionals, dir, settings } = ctx;
  const sourceName = str(values.source) ?? os.hostname();
  if (positionals[0] === "install" && positionals.length === 1) return agentInstall(ctx, sourceName);
  if (positionals.length) throw new UsageError(`unexpected ${JSON.stringify(positionals[0])}: reclo agent [install] --image PATH`);
  if (values.user !== undefined || values.print !== undefined || values.root !== undefined || values["agent-key"] !== undefined) throw new UsageError("--user, --print, --root and --agent-key belong to reclo agent install");
  const imagePath = str(values.image);
  if (!imagePath) throw new UsageError("--image is required");
  const concurrency = positiveInt(values.concurrency, "concurrency", 4, 64);
  const pollSeconds = io.env.RECLO_AGENT_POLL_SECONDS ? Number(io.env.RECLO_AGENT_POLL_SECONDS) : 60;
  if (!Number.isFinite(pollSeconds) || pollSeconds <= 0) throw new UsageError("RECLO_AGENT_POLL_SECONDS must be a positive number of seconds");
  const client = authedClient(settings);
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await runAgent({ client, imagePath, sourceName, concurrency, configDir: dir, serverUrl: settings.url, signal: ac.signal, pollMs: pollSeconds * 1000 });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return 0;
}
