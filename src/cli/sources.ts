import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import type { ParseArgsConfig } from "node:util";
import { DeleteSourceDocument, SetBackupScheduleDocument, SourceDocument, SourcesDocument, type SourceFieldsFragment } from "../client/generated/graphql";
import { CliError, UsageError } from "./errors";
import { positiveInt, str, type CommandContext } from "./command";
import { authedClient, fetchPages } from "./api-client";
import { formatDate, printTable } from "./format";
import { createAgentKey } from "./agent-keys";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `reclo sources`, `reclo schedule set|show`: the server's record of each protected machine and its schedule. */

export const SOURCE_USAGE: Record<string, string> = {
  sources: `Usage: reclo sources [--json] [--url URL]
       reclo sources delete NAME [--password-stdin] [--json]

Your sources (protected machines): schedule, next backup (and whether it will be FULL or
INCREMENTAL), last backup, when the agent was last seen, and since when backups are missed.

sources delete puts a whole source in the trash (it asks for your password again): after
DELETION_DELAY (72 h) all its restore points are deleted, its agent keys revoked and its schedule
removed. Until then nothing changes, you are e-mailed, and reclo trash restore Source:NAME undoes it.
`,
  schedule: `Usage: reclo schedule show SOURCE [--json]
       reclo schedule set SOURCE [--full DAY] [--at HH:MM] [--tz ZONE] [--grace MINUTES] [--json]

A source's backup schedule lives on the server; its agent (reclo agent) follows changes without a
restart. One backup a day at --at (24-hour, in --tz); on --full's weekday it is the weekly FULL,
other days INCREMENTAL (FULL as well while there is no intact chain or no FULL since the last
FULL slot). A slot with no backup started --grace minutes after it raises a BACKUP_MISSED
notification. What is not given keeps its current value (a new source: sun, 02:00, UTC, 60).

Options:
  --full DAY       sun, mon, tue, wed, thu, fri or sat
  --at HH:MM       Time of the daily backup
  --tz ZONE        IANA time zone, e.g. Europe/Berlin
  --grace MINUTES  Minutes after a slot before it counts as missed (1–1440)
  --json           JSON on stdout
`,
};

export const SOURCE_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  sources: { options: { json: { type: "boolean" } }, positionals: true, run: sourcesCommand },
  schedule: {
    options: { full: { type: "string" }, at: { type: "string" }, tz: { type: "string" }, grace: { type: "string" }, json: { type: "boolean" } },
    positionals: true,
    run: schedule,
  },
};

const DAY_WORDS: Record<string, string> = { SUNDAY: "Sun", MONDAY: "Mon", TUESDAY: "Tue", WEDNESDAY: "Wed", THURSDAY: "Thu", FRIDAY: "Fri", SATURDAY: "Sat" };

/** "daily 02:00 Europe/Berlin, FULL Sun (grace 60 min)" */
export function describeSchedule(s: SourceFieldsFragment["schedule"]): string {
  return `daily ${s.incrementalAt} ${s.timezone}, FULL ${DAY_WORDS[s.fullEvery] ?? s.fullEvery} (grace ${s.graceMinutes} min)`;
}

function describeSource(s: SourceFieldsFragment): string {
  const last = s.lastBackup ? `${s.lastBackup.kind} ${s.lastBackup.status}, started ${formatDate(s.lastBackup.createdAt)}` : "none";
  return [
    `Source:       ${s.name}`,
    `Schedule:     ${describeSchedule(s.schedule)}`,
    `Next backup:  ${formatDate(s.nextBackup.at)} ${s.nextBackup.kind} (${s.nextBackup.reason})`,
    `Last backup:  ${last}`,
    `Last seen:    ${s.lastSeenAt ? `${formatDate(s.lastSeenAt)}${s.agentHost ? ` (${s.agentHost}${s.agentVersion ? `, agent ${s.agentVersion}` : ""})` : ""}` : "never (no agent has checked in)"}`,
    `Missed since: ${s.missedSince ? formatDate(s.missedSince) : "-"}`,
    "",
  ].join("\n");
}

async function sourcesCommand(ctx: CommandContext): Promise<number> {
  const [sub, ...rest] = ctx.positionals;
  if (sub === undefined) return listSources(ctx);
  if (sub !== "delete") throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (sources, or sources delete NAME)`, "sources");
  if (rest.length !== 1) throw new UsageError("sources delete needs one source name", "sources");
  const item = (await authedClient(ctx.settings).request(DeleteSourceDocument, { name: rest[0]! })).deleteSource;
  if (ctx.values.json) ctx.io.stdout.write(`${JSON.stringify(item, null, 2)}\n`);
  else
    ctx.io.stdout.write(
      `Source ${rest[0]} is in the trash: on ${formatDate(item.effectiveAt)} its restore points are deleted, its agent keys revoked and its schedule removed. Until then nothing changes.\nUndo it before then: reclo trash restore ${item.id}\n`,
    );
  return 0;
}

async function listSources({ io, values, settings }: CommandContext): Promise<number> {
  const client = authedClient(settings);
  const rows = await fetchPages<SourceFieldsFragment>(100_000, async (first, after) => (await client.request(SourcesDocument, { first, after })).sources);
  if (values.json) {
    io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    io.stdout.write("No sources yet: a source appears with its first backup or schedule (reclo schedule set).\n");
    return 0;
  }
  printTable(
    io.stdout,
    ["SOURCE", "SCHEDULE", "NEXT BACKUP", "LAST BACKUP", "LAST SEEN", "MISSED SINCE"],
    rows.map((s) => [
      s.name,
      describeSchedule(s.schedule),
      `${formatDate(s.nextBackup.at)} ${s.nextBackup.kind}`,
      s.lastBackup ? `${formatDate(s.lastBackup.createdAt)} ${s.lastBackup.kind} ${s.lastBackup.status}` : "-",
      s.lastSeenAt ? formatDate(s.lastSeenAt) : "never",
      s.missedSince ? formatDate(s.missedSince) : "-",
    ]),
  );
  return 0;
}

async function schedule({ io, values, positionals, settings }: CommandContext): Promise<number> {
  const [sub, name, ...rest] = positionals;
  if ((sub !== "set" && sub !== "show") || !name || rest.length) throw new UsageError("expected: schedule show SOURCE, or schedule set SOURCE [options]", "schedule");
  const client = authedClient(settings);
  let source: SourceFieldsFragment | null;
  if (sub === "show") {
    source = (await client.request(SourceDocument, { name })).source ?? null;
    if (!source) throw new CliError(`No source named ${JSON.stringify(name)}: it appears with its first backup, or set its schedule (reclo schedule set ${name} …)`, "NOT_FOUND");
  } else {
    if (![values.full, values.at, values.tz, values.grace].some((v) => v !== undefined)) throw new UsageError("give at least one of --full, --at, --tz, --grace", "schedule");
    const current = (await client.request(SourceDocument, { name })).source?.schedule;
    const grace = values.grace === undefined ? undefined : positiveInt(values.grace, "grace", 60, 1440);
    source = (
      await client.request(SetBackupScheduleDocument, {
        input: {
          sourceName: name,
          fullEvery: str(values.full) ?? current?.fullEvery ?? "SUNDAY",
          incrementalAt: str(values.at) ?? current?.incrementalAt ?? "02:00",
          timezone: str(values.tz) ?? current?.timezone ?? "UTC",
          graceMinutes: grace ?? current?.graceMinutes ?? 60,
        },
      })
    ).setBackupSchedule;
  }
  io.stdout.write(values.json ? `${JSON.stringify(source, null, 2)}\n` : describeSource(source));
  return 0;
}

// ---------------------------------------------------------------------------------------------
// reclo agent install

export const AGENT_INSTALL_USAGE = `Usage: reclo agent install --image PATH [--source NAME] [--user NAME] [--agent-key KEY] [--print] [--root DIR] [--url URL]

Installs the agent as a systemd service that starts at boot: creates a dedicated system user
(default reclo-agent), writes the server URL and an agent key (never your session token: the key
can only back up this source; made with your session unless --agent-key gives one) to
/var/lib/reclo-agent/config.json (mode 0600, owned by that user, nobody else can read it), writes
/etc/systemd/system/reclo-agent.service (hardened: NoNewPrivileges, ProtectSystem=strict, the image
read-only) and enables and starts it. Needs root. The schedule is the server's: reclo schedule set.

  --print     Print the systemd unit (and an OpenRC service for other init systems); change nothing
  --root DIR  Write the files under DIR instead of / and run nothing (no useradd, no systemctl)
`;

export interface AgentInstallPlan {
  unitName: string;
  user: string;
  stateDir: string;
  unit: string;
  openrc: string;
  config: { url: string; agentKey: string };
}

function q(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, "\\$1")}"`;
}

/** The files `reclo agent install` writes, from its options. */
export function agentInstallPlan(o: { image: string; source: string; user: string; url: string; agentKey: string; node: string; cli: string; blockDevice: boolean }): AgentInstallPlan {
  const stateDir = "/var/lib/reclo-agent";
  const args = [o.node, o.cli, "agent", "--image", o.image, "--source", o.source, "--url", o.url].map(q).join(" ");
  const unit = `# Written by \`reclo agent install\`. The schedule is kept on the server: reclo schedule set ${q(o.source)} …
[Unit]
Description=ReClo backup agent (${o.source})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=${o.user}
Group=${o.user}
${o.blockDevice ? "SupplementaryGroups=disk\n" : ""}Environment=RECLO_CONFIG_DIR=${stateDir}
ExecStart=${args}
Restart=on-failure
RestartSec=30
StateDirectory=reclo-agent
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadOnlyPaths=${q(o.image)}
PrivateTmp=yes
PrivateDevices=${o.blockDevice ? "no" : "yes"}
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=no
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX

[Install]
WantedBy=multi-user.target
`;
  const openrc = `#!/sbin/openrc-run
# /etc/init.d/reclo-agent (OpenRC): the same agent, as ${o.user}; config.json in ${stateDir} (0600).
description="ReClo backup agent (${o.source})"
command=${q(o.node)}
command_args="${[o.cli, "agent", "--image", o.image, "--source", o.source, "--url", o.url].map(q).join(" ").replace(/"/g, '\\"')}"
command_user="${o.user}:${o.user}"
command_background=true
pidfile="/run/reclo-agent.pid"
export RECLO_CONFIG_DIR=${stateDir}
depend() { need net; }
`;
  return { unitName: "reclo-agent.service", user: o.user, stateDir, unit, openrc, config: { url: o.url, agentKey: o.agentKey } };
}

export async function agentInstall({ io, values, settings }: CommandContext, source: string): Promise<number> {
  const image = str(values.image);
  if (!image) throw new UsageError("--image is required", "agent");
  const user = str(values.user) ?? "reclo-agent";
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw new UsageError("--user must be a system user name (lower case, at most 32 characters)", "agent");
  const imagePath = path.resolve(image);
  let blockDevice = false;
  try {
    blockDevice = fs.statSync(imagePath).isBlockDevice();
  } catch {
    throw new CliError(`${imagePath}: no such file or device`, "IMAGE_NOT_FOUND");
  }
  const given = str(values["agent-key"])?.trim();
  if (given !== undefined && !/^rak_[A-Za-z0-9_-]{43}$/.test(given)) throw new UsageError("--agent-key must be an agent key (rak_…, from reclo agent-key create)", "agent");
  const plan = agentInstallPlan({ image: imagePath, source, user, url: settings.url, agentKey: given ?? "", node: process.execPath, cli: path.resolve(process.argv[1] ?? "reclo"), blockDevice });
  if (values.print) {
    io.stdout.write(`# /etc/systemd/system/${plan.unitName}\n${plan.unit}\n# Other init systems — OpenRC:\n${plan.openrc}`);
    return 0;
  }
  const root = str(values.root);
  const prefix = root ? path.resolve(root) : "/";
  const unitPath = path.join(prefix, "etc/systemd/system", plan.unitName);
  const stateDir = path.join(prefix, plan.stateDir.slice(1));
  const configPath = path.join(stateDir, "config.json");
  const run = (cmd: string, args: string[]) => {
    io.stdout.write(`${root ? "would run" : "running"}: ${[cmd, ...args].join(" ")}\n`);
    if (!root) execFileSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"] });
  };
  if (!root && process.getuid?.() !== 0) throw new CliError("reclo agent install needs root (sudo), or --root DIR to write the files elsewhere", "FORBIDDEN");
  if (!given) {
    // The agent gets a key of its own for this one source, made with the signed-in session.
    if (!settings.token || settings.token.startsWith("rak_")) throw new CliError("Not logged in: run reclo login first (to make the agent its key), or pass --agent-key", "UNAUTHENTICATED");
    const created = await createAgentKey(authedClient(settings), source, `reclo agent install on ${os.hostname()}`);
    plan.config.agentKey = created.secret;
    io.stdout.write(`made agent key ${created.agentKey.id} for source ${source} (revoke: reclo agent-key revoke ${created.agentKey.id})\n`);
  }

  // The dedicated user first: the token file is chowned to it.
  let exists = false;
  if (!root) {
    try {
      execFileSync("id", ["-u", user], { stdio: "ignore" });
      exists = true;
    } catch {
      exists = false;
    }
  }
  if (!exists) run("useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", plan.stateDir, "--shell", "/usr/sbin/nologin", user]);
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(stateDir, 0o700);
  fs.writeFileSync(configPath, `${JSON.stringify(plan.config, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(configPath, 0o600);
  run("chown", ["-R", `${user}:${user}`, plan.stateDir]);
  fs.mkdirSync(path.dirname(unitPath), { recursive: true });
  fs.writeFileSync(unitPath, plan.unit, { mode: 0o644 });
  io.stdout.write(`wrote ${unitPath}\nwrote ${configPath} (mode 0600, for ${user} only)\n`);
  run("systemctl", ["daemon-reload"]);
  run("systemctl", ["enable", "--now", plan.unitName]);
  io.stdout.write(root ? `Files written under ${prefix}; nothing was run.\n` : `The agent runs as ${user}: systemctl status ${plan.unitName}; its schedule: reclo schedule show ${source}\n`);
  return 0;
}
