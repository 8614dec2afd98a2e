import type { ParseArgsConfig } from "node:util";
import { AuditLogDocument, GrantSupportAccessDocument, RevokeSupportAccessDocument, SupportGrantsDocument, type AuditLogQuery, type GrantScope, type SupportGrantFieldsFragment } from "../client/generated/graphql";
import { UsageError } from "./errors";
import { positiveInt, str, type CommandContext } from "./command";
import { authedClient, fetchPages } from "./api-client";
import { formatDate, printTable } from "./format";

type Options = NonNullable<ParseArgsConfig["options"]>;
type AuditNode = AuditLogQuery["auditLog"]["edges"][number]["node"];

export const SUPPORT_USAGE: Record<string, string> = {
  support: `Usage: reclo support grant [--minutes 60] [--scope read|read-and-retry] [--note TEXT] [--json]
       reclo support list [--json]
       reclo support revoke ID [--json]

Let ReClo support look at your account for a while (your consent, recorded in your activity log).
Without a live grant support sees only your e-mail address and account status.

  grant    Grant access: --minutes from 5 to 10080 (default 60); --scope read (the default: look
           only) or read-and-retry (also retry or cancel your recoveries); --note what to look at
  list     Your grants, newest first: LIVE, EXPIRED or REVOKED
  revoke   End a grant now

Options:
  --json      JSON on stdout
  --url URL   GraphQL endpoint
`,
  activity: `Usage: reclo activity [--limit N] [--json]

Your account's audit log, newest first (default limit 20): logins, failed logins, logouts, password
changes, support grants, what support looked at, deleted backups, terminated machines.

Options:
  --limit N   At most N events
  --json      JSON on stdout
  --url URL   GraphQL endpoint
`,
};

export const SUPPORT_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  support: { options: { json: { type: "boolean" }, minutes: { type: "string" }, scope: { type: "string" }, note: { type: "string" } }, positionals: true, run: support },
  activity: { options: { json: { type: "boolean" }, limit: { type: "string" } }, run: activity },
};

function parseScope(raw: string | undefined): GrantScope | undefined {
  if (raw === undefined) return undefined;
  const s = raw.trim().toLowerCase();
  if (s === "read") return "READ";
  if (s === "read-and-retry" || s === "read_and_retry") return "READ_AND_RETRY";
  throw new UsageError(`--scope is read or read-and-retry, not "${raw}"`);
}

const grantLine = (g: SupportGrantFieldsFragment) =>
  `${g.status === "LIVE" ? `until ${formatDate(g.expiresAt)}` : g.status === "REVOKED" ? `revoked ${formatDate(g.revokedAt)}` : `expired ${formatDate(g.expiresAt)}`}`;

async function support({ io, values, settings, positionals }: CommandContext): Promise<number> {
  const [sub, ...args] = positionals;
  const client = authedClient(settings);
  if (sub !== "grant" && (values.minutes !== undefined || values.scope !== undefined || values.note !== undefined)) throw new UsageError('--minutes, --scope and --note belong to "reclo support grant"');
  const json = (v: unknown) => io.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  switch (sub) {
    case "grant": {
      if (args.length) throw new UsageError("reclo support grant takes no arguments (the note goes in --note)");
      const minutes = values.minutes === undefined ? undefined : positiveInt(values.minutes, "minutes", 60, 10_080);
      const g = (await client.request(GrantSupportAccessDocument, { input: { minutes, scope: parseScope(str(values.scope)), note: str(values.note) } })).grantSupportAccess;
      if (values.json) json(g);
      else
        io.stdout.write(
          `Support access granted (${g.scope === "READ" ? "read-only" : "read, retry and cancel recoveries"}) until ${formatDate(g.expiresAt)}.\nGrant ${g.id}; end it early: reclo support revoke ${g.id}\n`,
        );
      return 0;
    }
    case undefined:
    case "list": {
      if (args.length) throw new UsageError("reclo support list takes no arguments");
      const rows = await fetchPages<SupportGrantFieldsFragment>(1000, async (n, after) => (await client.request(SupportGrantsDocument, { first: n, after })).supportGrants);
      if (values.json) json(rows);
      else if (!rows.length) io.stdout.write("No support grants. Grant one: reclo support grant --note 'what to look at'\n");
      else printTable(io.stdout, ["ID", "STATUS", "SCOPE", "GRANTED", "", "NOTE"], rows.map((g) => [g.id, g.status, g.scope, formatDate(g.createdAt), grantLine(g), g.note]));
      return 0;
    }
    case "revoke": {
      if (args.length !== 1) throw new UsageError("reclo support revoke needs exactly one grant ID");
      const g = (await client.request(RevokeSupportAccessDocument, { id: args[0]! })).revokeSupportAccess;
      if (values.json) json(g);
      else io.stdout.write(`Support grant ${g.id} revoked: support can no longer see your account through it.\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown support command "${sub}" (grant, list, revoke)`);
  }
}

async function activity({ io, values, settings }: CommandContext): Promise<number> {
  const limit = positiveInt(values.limit, "limit", 20, 100_000);
  const client = authedClient(settings);
  const rows = await fetchPages<AuditNode>(limit, async (n, after) => (await client.request(AuditLogDocument, { first: n, after })).auditLog);
  if (values.json) {
    io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    io.stdout.write("No activity recorded yet.\n");
    return 0;
  }
  printTable(
    io.stdout,
    ["WHEN", "ACTION", "BY", "TARGET", "FROM"],
    rows.map((e) => [formatDate(e.at), e.action, e.actor ? `${e.actor.username}${e.actor.role === "CUSTOMER" ? "" : ` (${e.actor.role})`}` : "-", e.target ?? "", e.ip ?? ""]),
  );
  return 0;
}
