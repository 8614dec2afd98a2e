import type { ParseArgsConfig } from "node:util";
import {
  DeleteDrillPolicyDocument,
  DrillPolicyDocument,
  DrillsDocument,
  SetDrillPolicyDocument,
  StartDrillDocument,
  type DrillPolicyFieldsFragment,
  type DrillsQuery,
} from "../client/generated/graphql";
import { UsageError } from "./errors";
import { positiveInt, str, type CommandContext } from "./command";
import { authedClient, fetchPages } from "./api-client";
import { formatDate, printTable } from "./format";

type Options = NonNullable<ParseArgsConfig["options"]>;
type DrillNode = DrillsQuery["drills"]["edges"][number]["node"];

export const DRILL_USAGE: Record<string, string> = {
  drills: `Usage: reclo drills [SOURCE] [--limit N] [--json]
       reclo drills policy SOURCE [--every 7d|none] [--ports 22,3389] [--[no-]after-backup] [--off] [--json]
       reclo drills run SOURCE [--json]

A drill recovers a source's latest restore point in isolation, proves it boots (firmware log,
screen, service banners, serial marker), measures the RTO (drill start to the first positive
signal) and removes everything it created.

  drills [SOURCE]   The drill history, newest first (default limit 20): verdict, RTO, evidence
  drills policy     Show a source's drill policy, or change it (what is not given is kept):
                    --every (a duration, at least 1h by default; "none" for no schedule) runs
                    drills on a schedule, --after-backup after every completed backup, --ports the
                    TCP ports to probe (default 22,3389); --off removes the policy
  drills run        Start a drill of SOURCE now

Options:
  --limit N   At most N drills
  --json      JSON on stdout
  --url URL   GraphQL endpoint
`,
};

export const DRILL_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  drills: {
    options: {
      json: { type: "boolean" },
      limit: { type: "string" },
      every: { type: "string" },
      ports: { type: "string" },
      "after-backup": { type: "boolean" },
      "no-after-backup": { type: "boolean" },
      off: { type: "boolean" },
    },
    positionals: true,
    run: drills,
  },
};

/** "12.3 s", "2 min 05 s"; "-" for none. */
export function formatRto(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${String(Math.round(seconds - m * 60)).padStart(2, "0")} s`;
}

function parsePorts(raw: string | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  const ports = raw.split(",").map((p) => p.trim());
  if (!ports.length || ports.some((p) => !/^\d{1,5}$/.test(p))) throw new UsageError("--ports must be a comma-separated list of TCP ports, e.g. 22,3389");
  return ports.map(Number);
}

function describePolicy(p: DrillPolicyFieldsFragment): string {
  const when = [p.every ? `every ${p.every}` : null, p.afterEveryBackup ? "after every backup" : null].filter(Boolean).join(" and ") || "never (no interval, not after backups)";
  return `Drills of ${p.sourceName}: ${when}; ports ${p.ports.join(", ")}${p.scheduled ? " (scheduled)" : ""}\n`;
}

async function drills(ctx: CommandContext): Promise<number> {
  const [first, ...rest] = ctx.positionals;
  if (first === "policy") return policy(ctx, rest);
  if (first === "run") return run(ctx, rest);
  if (rest.length) throw new UsageError("give at most one source");
  for (const flag of ["every", "ports", "after-backup", "no-after-backup", "off"]) if (ctx.values[flag] !== undefined) throw new UsageError(`--${flag} belongs to "reclo drills policy SOURCE"`);
  const { io, values, settings } = ctx;
  const limit = positiveInt(values.limit, "limit", 20, 100_000);
  const client = authedClient(settings);
  const rows = await fetchPages<DrillNode>(limit, async (n, after) => (await client.request(DrillsDocument, { sourceName: first ?? null, first: n, after })).drills);
  if (values.json) {
    io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    io.stdout.write(first ? `No drills of ${first} yet. Set a policy: reclo drills policy ${first} --every 7d\n` : "No drills yet. Set a policy: reclo drills policy SOURCE --every 7d\n");
    return 0;
  }
  const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
  printTable(
    io.stdout,
    ["STARTED", "SOURCE", "TRIGGER", "VERDICT", "RTO", "EVIDENCE"],
    rows.map((d) => [formatDate(d.startedAt), d.sourceName, d.trigger, d.status, formatRto(d.rtoSeconds), clip(d.evidenceSummary ?? d.failureReason ?? "", 70)]),
    { right: [4] },
  );
  return 0;
}

async function policy({ io, values, settings }: CommandContext, args: string[]): Promise<number> {
  if (args.length !== 1) throw new UsageError("reclo drills policy needs exactly one SOURCE");
  const sourceName = args[0]!;
  const client = authedClient(settings);
  const setting = values.every !== undefined || values.ports !== undefined || values["after-backup"] !== undefined || values["no-after-backup"] !== undefined;
  if (values["after-backup"] && values["no-after-backup"]) throw new UsageError("--after-backup and --no-after-backup exclude each other");
  if (values.off) {
    if (setting) throw new UsageError("--off cannot be combined with --every, --ports or --[no-]after-backup");
    const removed = (await client.request(DeleteDrillPolicyDocument, { sourceName })).deleteDrillPolicy;
    io.stdout.write(values.json ? `${JSON.stringify({ sourceName, removed })}\n` : removed ? `Drill policy of ${sourceName} removed (its schedule too).\n` : `${sourceName} had no drill policy.\n`);
    return 0;
  }
  if (!setting) {
    const p = (await client.request(DrillPolicyDocument, { sourceName })).drillPolicy;
    io.stdout.write(values.json ? `${JSON.stringify(p, null, 2)}\n` : p ? describePolicy(p) : `${sourceName} has no drill policy. Set one: reclo drills policy ${sourceName} --every 7d\n`);
    return 0;
  }
  // Only what is given changes: the rest comes from the current policy.
  const current = (await client.request(DrillPolicyDocument, { sourceName })).drillPolicy;
  const every = str(values.every);
  const p = (
    await client.request(SetDrillPolicyDocument, {
      input: {
        sourceName,
        every: every === undefined ? (current?.every ?? null) : every === "none" ? null : every,
        afterEveryBackup: values["after-backup"] ? true : values["no-after-backup"] ? false : (current?.afterEveryBackup ?? false),
        ports: parsePorts(str(values.ports)) ?? current?.ports ?? null,
      },
    })
  ).setDrillPolicy;
  io.stdout.write(values.json ? `${JSON.stringify(p, null, 2)}\n` : describePolicy(p));
  return 0;
}

async function run({ io, values, settings }: CommandContext, args: string[]): Promise<number> {
  if (args.length !== 1) throw new UsageError("reclo drills run needs exactly one SOURCE");
  const d = (await authedClient(settings).request(StartDrillDocument, { sourceName: args[0]! })).startDrill;
  io.stdout.write(values.json ? `${JSON.stringify(d, null, 2)}\n` : `Drill ${d.id} of ${d.sourceName} started; follow it with: reclo drills ${d.sourceName}\n`);
  return 0;
}
