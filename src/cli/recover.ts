import type { ParseArgsConfig } from "node:util";
import {
  CancelRecoveryDocument,
  InstanceDocument,
  InstancesDocument,
  RecoveriesDocument,
  RecoveryTimelineDocument,
  RestorePointsDocument,
  StartInstanceDocument,
  StartRecoveryDocument,
  StopInstanceDocument,
  TerminateInstanceDocument,
  type InstanceFieldsFragment,
  type InstancesQuery,
  type RecoveriesQuery,
  type RestorePointsQuery,
  type RecoveryTarget,
} from "../client/generated/graphql";
import type { ReCloClient } from "../client/graphql-client";
import { CliError, UsageError, describeError, errorCode } from "./errors";
import { positiveInt, str, type CommandContext } from "./command";
import { authedClient, fetchPages } from "./api-client";
import { ask } from "./prompts";
import { alarmMarks, formatDate, printTable } from "./format";
import { formatBytes } from "./progress";
import { verdictWords } from "../client/verdict-words";
import { JsonRecoveryView, PlainRecoveryView, TtyRecoveryView, describeBackup, reachInstructions, type RecoveryView } from "./recovery-view";
import { TERMINAL_STATES, watchRecovery } from "./watch";
import { ACCESS_ACTIONS, ACCESS_USAGE, accessAction } from "./access";

/**
 * The Recovery Manager commands of `reclo`: recover (pick, start, watch live, cancel, attach),
 * recoveries, instances, instance start|stop|terminate|show.
 *
 * Exit codes of `recover`: 0 COMPLETED and seen to start (or CANCELLED for --cancel), 1
 * FAILED/CANCELLED/error, 2 usage, 3 COMPLETED but the machine did not pass its boot check
 * (FAILED or INCONCLUSIVE; the machine is kept), 130 detached with Ctrl-C (the recovery keeps running).
 */

export const EXIT_DETACHED = 130;
export const EXIT_BOOT_CHECK_FAILED = 3;

export const RECOVERY_USAGE: Record<string, string> = {
  recover: `Usage: reclo recover [backup-id] [options]
       reclo recover --attach <recovery-id>
       reclo recover --cancel <recovery-id>

Recovers a restore point into a new machine and shows its progress live until it is seen to
start: Preparing, Importing, Launching, then Checking it started (its screen, its SSH/RDP
services, the provider's status checks), with the evidence and the measured RTO at the end.
Without a backup id, lists your restore points (source, date, kind, size, verified?) and asks
which one (the answer may come from stdin). Ctrl-C detaches: the recovery keeps running on the
server; watch it again with --attach. Recovering a backup that is already being recovered
attaches to that recovery instead of starting another.

Options:
  --target LOCAL|AWS   Where the machine runs (default: the server's)
  --allowed-cidr CIDR  Who may connect to it (AWS; default: the server's setting, else your address)
  --allow-internet     Let the machine open connections to the internet (AWS only; default: it
                       reaches nothing)
  --ports LIST         The machine's TCP ports, the only ones its private access point admits
                       (default 22,3389,445)
  --source NAME        Only offer restore points of this source in the list
  --attach ID          Watch a recovery that is already running
  --cancel ID          Cancel a recovery: everything it created is removed; waits until it is
  --json               One JSON object per line on stdout for each event (recovery, progress,
                       connection, completed/failed/cancelled, detached, error)
  --url URL            GraphQL endpoint

Exit codes: 0 completed and started (cancelled, with --cancel), 1 failed or cancelled, 2 usage,
3 completed but the machine did not pass its boot check (it is kept), 130 detached.
The live view reconnects by itself when the network drops, and picks up from the current state.
`,
  recoveries: `Usage: reclo recoveries [--active] [--limit N] [--json] [--url URL]

Lists your recoveries, newest first (default limit 20); --active: only those still under way.
`,
  instances: `Usage: reclo instances [--limit N] [--json] [--url URL]

Lists your recovered machines, newest first (default limit 20), with how to reach them.
`,
  instance: `Usage: reclo instance show|start|stop|terminate|connect|keys <instance-id> [--yes] [--json] [--url URL]
       reclo instance revoke-key <key-id>

  show        State, address and how to connect
  start       Start a stopped machine
  stop        Shut it down gracefully (forced after a timeout); its disk is kept
  terminate   Destroy the machine and its disk. Asks for confirmation unless --yes.
${ACCESS_USAGE}
`,
};

type Options = NonNullable<ParseArgsConfig["options"]>;
export const RECOVERY_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  recover: {
    options: {
      target: { type: "string" },
      "allowed-cidr": { type: "string" },
      "allow-internet": { type: "boolean" },
      ports: { type: "string" },
      source: { type: "string" },
      attach: { type: "string" },
      cancel: { type: "string" },
      json: { type: "boolean" },
    },
    positionals: true,
    run: recover,
  },
  recoveries: { options: { json: { type: "boolean" }, limit: { type: "string" }, active: { type: "boolean" } }, run: recoveries },
  instances: { options: { json: { type: "boolean" }, limit: { type: "string" } }, run: instances },
  instance: { options: { yes: { type: "boolean", short: "y" }, json: { type: "boolean" }, device: { type: "string" }, output: { type: "string" } }, positionals: true, run: instance },
};

// ---------------------------------------------------------------------------------------------
// recover

function parseTarget(raw: string | undefined): RecoveryTarget | undefined {
  if (raw === undefined) return undefined;
  const t = raw.toUpperCase();
  if (t !== "LOCAL" && t !== "AWS") throw new UsageError("--target must be LOCAL or AWS");
  return t;
}

/** --ports 22,3389,445: the server validates the range; here only the shape. */
function parsePorts(raw: string | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,5}(,\d{1,5})*$/.test(raw.replace(/\s+/g, ""))) throw new UsageError("--ports must be a comma-separated list of TCP ports, e.g. 22,3389,445");
  return raw.replace(/\s+/g, "").split(",").map(Number);
}

async function recover(ctx: CommandContext): Promise<number> {
  const { io, values, positionals, settings } = ctx;
  const cancelId = str(values.cancel);
  const attachId = str(values.attach);
  if (positionals.length > 1) throw new UsageError("give at most one backup id");
  if ([cancelId, attachId, positionals[0]].filter(Boolean).length > 1) throw new UsageError("give a backup id, --attach or --cancel: only one of them");
  const target = parseTarget(str(values.target));
  const ports = parsePorts(str(values.ports));
  const json = Boolean(values.json);
  const view: RecoveryView = json ? new JsonRecoveryView(io.stdout) : io.stderr.isTTY ? new TtyRecoveryView(io.stderr) : new PlainRecoveryView(io.stdout, io.stderr);
  const client = authedClient(settings);

  let recoveryId: string;
  try {
    if (cancelId) {
      const { cancelRecovery } = await client.request(CancelRecoveryDocument, { id: cancelId });
      recoveryId = cancelRecovery.id;
      const { recovery } = await client.request(RecoveryTimelineDocument, { id: recoveryId });
      view.header({ recoveryId, target: recovery.target, backup: recovery.backup }, "Cancelling: removing everything it created…");
    } else if (attachId) {
      const { recovery } = await client.request(RecoveryTimelineDocument, { id: attachId });
      recoveryId = recovery.id;
      view.header({ recoveryId, target: recovery.target, backup: recovery.backup }, TERMINAL_STATES.has(recovery.state) ? undefined : "Attached to a running recovery.");
    } else {
      const backupId = positionals[0] ?? (await pickRestorePoint(ctx, client));
      if (!backupId) {
        io.stderr.write("Nothing recovered.\n");
        return 1;
      }
      const { startRecovery } = await client.request(StartRecoveryDocument, {
        input: { backupId, target, allowedCidr: str(values["allowed-cidr"]), ...(values["allow-internet"] ? { allowInternet: true } : {}), ...(ports ? { ports } : {}) },
      });
      recoveryId = startRecovery.id;
      const attached = startRecovery.state !== "PENDING" || Date.now() - Date.parse(startRecovery.createdAt) > 60_000;
      view.header({ recoveryId, target: startRecovery.target, backup: startRecovery.backup }, attached ? "This restore point was already being recovered: attached to that recovery." : undefined);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    view.error(describeError(err, settings), errorCode(err));
    view.close();
    if (json) io.stderr.write(`reclo: ${describeError(err, settings)}\n`);
    return 1;
  }

  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const end = await watchRecovery({ client, recoveryId, signal: ac.signal, onUpdate: (r) => view.update(r), onConnection: (e) => view.connection(e) });
    if (!end) {
      view.detached(recoveryId);
      return EXIT_DETACHED;
    }
    let machine: InstanceFieldsFragment | null = null;
    if (end.state === "COMPLETED") machine = (await client.request(RecoveryTimelineDocument, { id: recoveryId })).recovery.instance;
    view.finish(end, machine);
    if (end.state === "COMPLETED") return end.bootCheck && end.bootCheck.status !== "VERIFIED" ? EXIT_BOOT_CHECK_FAILED : 0;
    return cancelId && end.state === "CANCELLED" ? 0 : 1;
  } catch (err) {
    view.error(describeError(err, settings), errorCode(err));
    if (json) io.stderr.write(`reclo: ${describeError(err, settings)}\n`);
    return 1;
  } finally {
    view.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

type RestorePoint = RestorePointsQuery["backups"]["edges"][number]["node"];

/** The boot check for the picker: "verified" only with positive evidence, else what was seen. */
export function verificationLabel(v: RestorePoint["verification"]): string {
  const short = verdictWords(v).short;
  return short.length > 100 ? `${short.slice(0, 99)}…` : short;
}

/** Lists the restorable restore points and asks which one; null when the user quits. */
async function pickRestorePoint({ io, values }: CommandContext, client: ReCloClient): Promise<string | null> {
  const source = str(values.source);
  const page = await client.request(RestorePointsDocument, { first: 30, filter: { status: "COMPLETED", ...(source ? { sourceName: source } : {}) } });
  const points = page.backups.edges.map((e) => e.node);
  if (!points.length) throw new CliError(source ? `No completed backups of ${source} to recover.` : "No completed backups to recover yet: run `reclo backup` first.", "NO_RESTORE_POINTS");
  io.stderr.write(`Restore points${source ? ` of ${source}` : ""}, newest first${page.backups.totalCount > points.length ? ` (the ${points.length} newest of ${page.backups.totalCount})` : ""}:\n`);
  const marks = alarmMarks(points);
  const header = ["#", "SOURCE", "TAKEN", "KIND", "SIZE", "BOOT CHECK"];
  const cells = points.map((p, i) => [String(i + 1), p.sourceName, formatDate(p.completedAt ?? p.createdAt), p.kind, formatBytes(p.imageSize), p.restorable ? verificationLabel(p.verification) : "cannot be recovered: data missing"]);
  // The encryption alarm's marks, in a column of their own when there are any.
  printTable(io.stderr, marks.size ? [...header, "ALARM"] : header, marks.size ? cells.map((c, i) => [...c, marks.get(points[i]!.id) ?? ""]) : cells, { right: [0, 4] });
  for (;;) {
    const answer = await ask(io, `Recover which one? [${points.length > 1 ? `1-${points.length}` : "1"}, Enter for 1, q to quit]: `);
    if (answer === null) {
      if (!io.stdin.isTTY) throw new UsageError("no restore point chosen: give a backup id, or the number on stdin");
      return null;
    }
    const a = answer.trim().toLowerCase();
    if (a === "q" || a === "quit") return null;
    const n = a === "" ? 1 : Number(a);
    const point = Number.isInteger(n) ? points[n - 1] : undefined;
    if (!point) {
      io.stderr.write(`Please answer a number from 1 to ${points.length}, or q.\n`);
    } else if (!point.restorable) {
      io.stderr.write(`Restore point ${n} cannot be recovered: some of its data is missing from storage. Pick another.\n`);
    } else {
      if (point.suspect && point.suspect.verdict !== "SAFE") {
        const clean = points.findIndex((p) => marks.get(p.id) === "last clean");
        io.stderr.write(
          `WARNING: restore point ${n} is suspected of holding a ransomware-encrypted disk (${point.suspect.reason})${point.suspect.verdict === "ENCRYPTED" ? "; you marked it ENCRYPTED" : ""}.` +
            `${clean >= 0 ? ` The last clean restore point is ${clean + 1}.` : ""}\n`,
        );
        // Asked on stdin too when it is not a terminal: recovering a suspect point needs an explicit yes.
        const sure = await ask(io, "Recover it anyway? [y/N]: ");
        if (!/^y(es)?$/i.test(sure?.trim() ?? "")) continue;
      }
      return point.id;
    }
    if (!io.stdin.isTTY) throw new UsageError("no valid restore point chosen");
  }
}

// ---------------------------------------------------------------------------------------------
// recoveries / instances

type RecoveryRow = RecoveriesQuery["recoveries"]["edges"][number]["node"];
type InstanceRow = InstancesQuery["instances"]["edges"][number]["node"];

async function recoveries({ io, values, settings }: CommandContext): Promise<number> {
  const client = authedClient(settings);
  const filter = values.active ? { active: true } : undefined;
  const rows = await fetchPages<RecoveryRow>(positiveInt(values.limit, "limit", 20, 100_000), async (first, after) => (await client.request(RecoveriesDocument, { first, after, filter })).recoveries);
  if (values.json) {
    io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    io.stdout.write(values.active ? "No recovery is under way.\n" : "No recoveries yet. Start one with `reclo recover`.\n");
    return 0;
  }
  printTable(
    io.stdout,
    ["ID", "STATE", "DONE", "SOURCE", "RESTORE POINT", "TARGET", "STARTED", "MACHINE"],
    rows.map((r) => [
      r.id,
      r.state,
      `${r.totalProgress}%`,
      r.backup.sourceName,
      formatDate(r.backup.completedAt ?? r.backup.createdAt),
      r.target,
      formatDate(r.createdAt),
      r.instance ? `${r.instance.id} (${r.instance.state})` : r.state === "FAILED" ? (r.failureReason ?? "-") : "-",
    ]),
    { right: [2] },
  );
  return 0;
}

async function instances({ io, values, settings }: CommandContext): Promise<number> {
  const client = authedClient(settings);
  const rows = await fetchPages<InstanceRow>(positiveInt(values.limit, "limit", 20, 100_000), async (first, after) => (await client.request(InstancesDocument, { first, after })).instances);
  if (values.json) {
    io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (!rows.length) {
    io.stdout.write("No machines yet. Recover one with `reclo recover`.\n");
    return 0;
  }
  printTable(
    io.stdout,
    ["ID", "NAME", "STATE", "WHERE", "ADDRESS", "SOURCE", "CREATED"],
    rows.map((i) => [i.id, i.name, i.state, i.provider === "LOCAL" ? "local" : `AWS ${i.zone ?? ""}`.trim(), i.address ?? "-", i.recovery?.backup.sourceName ?? "-", formatDate(i.createdAt)]),
  );
  return 0;
}

// ---------------------------------------------------------------------------------------------
// instance show|start|stop|terminate

const INSTANCE_ACTIONS = new Set(["show", "start", "stop", "terminate"]);

async function instance(ctx: CommandContext): Promise<number> {
  const { io, values, positionals, settings } = ctx;
  const [action, id, ...rest] = positionals;
  if (!action || !(INSTANCE_ACTIONS.has(action) || ACCESS_ACTIONS.has(action))) throw new UsageError(action ? `unknown action ${JSON.stringify(action)}` : "missing the action");
  if (!id) throw new UsageError(action === "revoke-key" ? "missing the key id" : "missing the instance id");
  if (rest.length) throw new UsageError(action === "revoke-key" ? "give exactly one key id" : "give exactly one instance id");
  if ((values.device !== undefined || values.output !== undefined) && action !== "connect") throw new UsageError("--device and --output are for `instance connect`");
  if (ACCESS_ACTIONS.has(action)) return accessAction(action, id, ctx);
  const client = authedClient(settings);
  const json = Boolean(values.json);
  const print = (i: InstanceFieldsFragment, lines: string[]) => {
    if (json) io.stdout.write(`${JSON.stringify(i, null, 2)}\n`);
    else for (const l of lines) io.stdout.write(`${l}\n`);
  };

  if (action === "show") {
    const { instance: i } = await client.request(InstanceDocument, { id });
    print(i, [...reachInstructions(i), `Recovered by ${i.recovery ? `recovery ${i.recovery.id}` : "-"}; created ${formatDate(i.createdAt)}.`]);
    return 0;
  }
  if (action === "start") {
    if (!json) io.stderr.write(`Starting ${id}…\n`);
    const { startInstance: i } = await client.request(StartInstanceDocument, { id });
    print(i, reachInstructions(i));
    return 0;
  }
  if (action === "stop") {
    if (!json) io.stderr.write(`Stopping ${id} (a graceful shutdown, forced after a timeout)…\n`);
    const { stopInstance: i } = await client.request(StopInstanceDocument, { id });
    print(i, [`Machine ${i.name} is ${i.state}. Its disk is kept: start it again with \`reclo instance start ${i.id}\`.`]);
    return 0;
  }
  // terminate
  const { instance: current } = await client.request(InstanceDocument, { id });
  if (current.state === "TERMINATED") {
    print(current, [`Machine ${current.name} is already terminated.`]);
    return 0;
  }
  if (!values.yes) {
    const source = current.recovery?.backup ? ` (recovered from ${describeBackup(current.recovery.backup)})` : "";
    io.stderr.write(`Terminate machine ${current.name}${source}, now ${current.state}${current.address ? ` at ${current.address}` : ""}?\nThis destroys the machine and its disk. It cannot be undone.\n`);
    const answer = await ask(io, "Type yes to terminate: ");
    if (!answer || !/^(y|yes)$/i.test(answer.trim())) {
      io.stderr.write("Not terminated.\n");
      return 1;
    }
  }
  const { terminateInstance: i } = await client.request(TerminateInstanceDocument, { id });
  print(i, [`Machine ${i.name} is ${i.state}: it and everything its recovery left behind are gone.`]);
  return 0;
}
