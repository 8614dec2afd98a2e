import type { ParseArgsConfig } from "node:util";
import {
  AddWebhookDocument,
  MarkAllNotificationsReadDocument,
  NotificationsDocument,
  RemoveWebhookDocument,
  SendTestWebhookDocument,
  WebhooksDocument,
  type NotificationKind,
  type NotificationsQuery,
} from "../client/generated/graphql";
import { UsageError } from "./errors";
import { positiveInt, str, type CommandContext } from "./command";
import { authedClient, fetchPages } from "./api-client";
import { formatDate, printTable } from "./format";

type Options = NonNullable<ParseArgsConfig["options"]>;
type NotificationNode = NotificationsQuery["notifications"]["edges"][number]["node"];

/** Every kind, in the schema's order (what `--events all` means). */
const KINDS: NotificationKind[] = ["BACKUP_MISSED", "UPLOAD_FAILED", "UPLOAD_ABANDONED", "VERIFICATION_FAILED", "RECOVERY_FAILED", "RECOVERY_COMPLETED", "INSTANCE_TERMINATING", "DELETION_REQUESTED"];

export const NOTIFICATION_USAGE: Record<string, string> = {
  notifications: `Usage: reclo notifications [--unread] [--limit N] [--mark-read] [--json]

Your notifications, newest first (default limit 20): missed backups, failed uploads, verifications
and recoveries, machines about to be terminated. Unread ones are marked with *.

Options:
  --unread     Only the unread ones
  --mark-read  Then mark all of them read
  --limit N    At most N notifications
  --json       JSON on stdout
  --url URL    GraphQL endpoint
`,
  webhooks: `Usage: reclo webhooks list [--json]
       reclo webhooks add URL [--events KIND,KIND…|all] [--json]
       reclo webhooks remove ID
       reclo webhooks test ID [--json]

A webhook receives your notifications as JSON POSTs, signed: X-ReClo-Signature is
sha256=<hex HMAC-SHA256 of "<X-ReClo-Timestamp>.<raw body>"> keyed with the webhook's secret,
which "add" prints once (it is never shown again). Failed deliveries are retried with backoff.

  list     Your webhooks and their latest delivery
  add      Add one (http(s), a public address); --events defaults to all kinds:
           ${KINDS.join(", ")}
  remove   Remove one (and its delivery log)
  test     Send it a signed TEST event now and show how it answered

Options:
  --json      JSON on stdout
  --url URL   GraphQL endpoint
`,
};

export const NOTIFICATION_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  notifications: { options: { json: { type: "boolean" }, unread: { type: "boolean" }, limit: { type: "string" }, "mark-read": { type: "boolean" } }, run: notifications },
  webhooks: { options: { json: { type: "boolean" }, events: { type: "string" } }, positionals: true, run: webhooks },
};

async function notifications({ io, values, settings }: CommandContext): Promise<number> {
  const limit = positiveInt(values.limit, "limit", 20, 100_000);
  const client = authedClient(settings);
  let unread = 0;
  const rows = await fetchPages<NotificationNode>(limit, async (n, after) => {
    const r = await client.request(NotificationsDocument, { first: n, after, unreadOnly: values.unread === true });
    unread = r.unreadNotificationCount;
    return r.notifications;
  });
  if (values["mark-read"]) unread = (await client.request(MarkAllNotificationsReadDocument, {})).markAllNotificationsRead;
  if (values.json) {
    io.stdout.write(`${JSON.stringify({ unread, notifications: rows }, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    io.stdout.write(values.unread ? "No unread notifications.\n" : "No notifications yet.\n");
    return 0;
  }
  printTable(
    io.stdout,
    ["", "WHEN", "KIND", "TITLE"],
    rows.map((r) => [r.readAt ? "" : "*", formatDate(r.createdAt), r.kind, r.title]),
  );
  io.stdout.write(`${unread} unread${values["mark-read"] ? " (all marked read)" : ""}\n`);
  return 0;
}

function parseEvents(raw: string | undefined): NotificationKind[] {
  if (raw === undefined || raw.trim() === "all") return KINDS;
  const kinds = raw.split(",").map((k) => k.trim().toUpperCase());
  const unknown = kinds.find((k) => !KINDS.includes(k as NotificationKind));
  if (unknown !== undefined || !kinds.length) throw new UsageError(`--events takes a comma-separated list of ${KINDS.join(", ")} (or all), not "${unknown ?? raw}"`);
  return kinds as NotificationKind[];
}

async function webhooks({ io, values, settings, positionals }: CommandContext): Promise<number> {
  const [sub, ...args] = positionals;
  const client = authedClient(settings);
  const one = (what: string) => {
    if (args.length !== 1) throw new UsageError(`reclo webhooks ${sub} needs exactly one ${what}`);
    return args[0]!;
  };
  if (sub !== "add" && values.events !== undefined) throw new UsageError('--events belongs to "reclo webhooks add"');
  switch (sub) {
    case undefined:
    case "list": {
      if (args.length) throw new UsageError("reclo webhooks list takes no arguments");
      const { webhooks: list } = await client.request(WebhooksDocument, {});
      if (values.json) io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else if (!list.length) io.stdout.write("No webhooks. Add one: reclo webhooks add https://example.com/reclo-hook\n");
      else
        printTable(
          io.stdout,
          ["ID", "URL", "EVENTS", "LAST DELIVERY"],
          list.map((w) => {
            const d = w.deliveries[0];
            return [w.id, w.url, w.events.length === KINDS.length ? "all" : w.events.join(","), d ? `${d.status}${d.httpStatus ? ` ${d.httpStatus}` : ""} ${formatDate(d.at)}` : "-"];
          }),
        );
      return 0;
    }
    case "add": {
      const url = one("URL");
      const w = (await client.request(AddWebhookDocument, { input: { url, events: parseEvents(str(values.events)) } })).addWebhook;
      if (values.json) io.stdout.write(`${JSON.stringify(w, null, 2)}\n`);
      else
        io.stdout.write(
          `Webhook ${w.id} added: ${w.url}\nEvents: ${w.events.join(", ")}\nSigning secret (shown only now; keep it with your receiver):\n  ${w.signingSecret}\nTry it: reclo webhooks test ${w.id}\n`,
        );
      return 0;
    }
    case "remove": {
      const w = (await client.request(RemoveWebhookDocument, { id: one("ID") })).removeWebhook;
      io.stdout.write(values.json ? `${JSON.stringify(w, null, 2)}\n` : `Webhook ${w.id} (${w.url}) removed.\n`);
      return 0;
    }
    case "test": {
      const d = (await client.request(SendTestWebhookDocument, { id: one("ID") })).sendTestWebhook;
      if (values.json) io.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
      else io.stdout.write(`${d.status}: ${d.httpStatus !== null ? `HTTP ${d.httpStatus}` : (d.error ?? "no answer")} in ${d.durationMs} ms${d.responseExcerpt ? `\n${d.responseExcerpt}` : ""}\n`);
      return d.status === "DELIVERED" ? 0 : 1;
    }
    default:
      throw new UsageError(`unknown webhooks command "${sub}" (list, add, remove, test)`);
  }
}
