import type { ParseArgsConfig } from "node:util";
import { AgentKeysDocument, CreateAgentKeyDocument, RevokeAgentKeyDocument, RevokeAllAgentKeysDocument, type AgentKeyFieldsFragment } from "../client/generated/graphql";
import type { ReCloClient } from "../client/graphql-client";
import { CliError, UsageError } from "./errors";
import { str, type CommandContext } from "./command";
import { authedClient } from "./api-client";
import { formatDate, printTable } from "./format";

type Options = NonNullable<ParseArgsConfig["options"]>;

export const AGENT_KEY_USAGE: Record<string, string> = {
  "agent-key": `Usage: reclo agent-key create --source NAME [--note TEXT] [--json]
       reclo agent-key list [--json]
       reclo agent-key revoke ID [--json]
       reclo agent-key revoke --all [--password-stdin] [--json]

Agent keys: what a source's backup agent signs in with instead of your session. A key can only back
up its one source (check in, plan, upload, complete or fail its backups): it cannot delete, change
retention, recover, verify, read other sources or make keys, so a stolen server cannot destroy your
restore points. reclo agent install makes one for you.

  create   A new key for --source; its secret (rak_…) is printed once and never again
  list     Your keys: source, note, last used (when, from where), revoked
  revoke   The key stops working at once. --all revokes every key, but only after DELETION_DELAY
           (72 h) and with your password again: it waits in the trash, you are e-mailed, and
           reclo trash restore AgentKeys:… cancels it (a stolen session cannot stop your backups)

Options:
  --json      JSON on stdout
  --url URL   GraphQL endpoint
`,
};

export const AGENT_KEY_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  "agent-key": { options: { source: { type: "string" }, note: { type: "string" }, all: { type: "boolean" }, json: { type: "boolean" } }, positionals: true, run: agentKeyCommand },
};

/** Makes a key for `sourceName` with the signed-in session (an agent key cannot make keys). */
export async function createAgentKey(client: ReCloClient, sourceName: string, note: string | undefined): Promise<{ secret: string; agentKey: AgentKeyFieldsFragment }> {
  return (await client.request(CreateAgentKeyDocument, { input: { sourceName, note: note ?? null } })).createAgentKey;
}

function needsSession(ctx: CommandContext): void {
  if (ctx.settings.tokenSource === "RECLO_AGENT_KEY" || ctx.settings.tokenSource === "agent key" || ctx.settings.token?.startsWith("rak_"))
    throw new CliError("Agent keys are managed with your own session: run reclo login (an agent key cannot manage keys)", "FORBIDDEN");
}

async function agentKeyCommand(ctx: CommandContext): Promise<number> {
  const { io, values, positionals } = ctx;
  const [sub, ...rest] = positionals;
  const json = values.json === true;
  if (sub === "create") {
    if (rest.length) throw new UsageError(`unexpected ${JSON.stringify(rest[0])}`, "agent-key");
    const source = str(values.source)?.trim();
    if (!source) throw new UsageError("--source is required", "agent-key");
    needsSession(ctx);
    const created = await createAgentKey(authedClient(ctx.settings), source, str(values.note));
    if (json) io.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
    else
      io.stdout.write(
        `Agent key ${created.agentKey.id} for source ${created.agentKey.sourceName}:\n\n  ${created.secret}\n\nSave it now: it is not shown again. Give it to the agent as RECLO_AGENT_KEY, or run reclo agent install --agent-key KEY.\n`,
      );
    return 0;
  }
  if (sub === "list") {
    if (rest.length) throw new UsageError(`unexpected ${JSON.stringify(rest[0])}`, "agent-key");
    needsSession(ctx);
    const keys = (await authedClient(ctx.settings).request(AgentKeysDocument, {})).agentKeys;
    if (json) io.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
    else if (!keys.length) io.stdout.write("No agent keys. Make one: reclo agent-key create --source NAME\n");
    else
      printTable(
        io.stdout,
        ["ID", "SOURCE", "NOTE", "CREATED", "LAST USED", "FROM", "STATUS"],
        keys.map((k) => [k.id, k.sourceName, k.note ?? "", formatDate(k.createdAt), k.lastUsedAt ? formatDate(k.lastUsedAt) : "never", k.lastUsedIp ?? "", k.revokedAt ? `REVOKED ${formatDate(k.revokedAt)}` : "ACTIVE"]),
      );
    return 0;
  }
  if (sub === "revoke" && values.all) {
    if (rest.length) throw new UsageError("revoke --all takes no key ID", "agent-key");
    needsSession(ctx);
    const item = (await authedClient(ctx.settings).request(RevokeAllAgentKeysDocument, {})).revokeAllAgentKeys;
    if (json) io.stdout.write(`${JSON.stringify(item, null, 2)}\n`);
    else io.stdout.write(`Revoking all agent keys is in the trash: on ${formatDate(item.effectiveAt)} every key still active then stops working. Until then your agents keep backing up.\nCancel it before then: reclo trash restore ${item.id}\n`);
    return 0;
  }
  if (values.all) throw new UsageError("--all belongs to agent-key revoke", "agent-key");
  if (sub === "revoke") {
    if (rest.length !== 1) throw new UsageError("revoke needs the key's ID (reclo agent-key list)", "agent-key");
    needsSession(ctx);
    const key = (await authedClient(ctx.settings).request(RevokeAgentKeyDocument, { id: rest[0]! })).revokeAgentKey;
    if (json) io.stdout.write(`${JSON.stringify(key, null, 2)}\n`);
    else io.stdout.write(`Agent key ${key.id} (source ${key.sourceName}) is revoked.\n`);
    return 0;
  }
  throw new UsageError(sub ? `unknown subcommand ${JSON.stringify(sub)}` : "create, list or revoke?", "agent-key");
}
