import type { ParseArgsConfig } from "node:util";
import { BackupVerificationResultDocument, VerifyBackupDocument, type VerificationFieldsFragment } from "../client/generated/graphql";
import { evidenceWords, verdictWords } from "../client/verdict-words";
import { CliError, UsageError } from "./errors";
import { str, type CommandContext } from "./command";
import { authedClient } from "./api-client";

type Options = NonNullable<ParseArgsConfig["options"]>;

export const VERIFY_USAGE: Record<string, string> = {
  verify: `Usage: reclo verify <backup-id> [--ports 22,3389] [--marker TEXT] [--json]
       reclo verify <backup-id> --show [--json]

Proves a restore point starts: the server boots it in isolation, collects evidence (the firmware's
log, the screen read by OCR, banners on the ports, the serial marker), then removes the machine.
Prints each piece of evidence as it is seen, then the verdict: VERIFIED (something showed it
started and nothing showed a failure), FAILED (a failure was seen: the reason says which) or
INCONCLUSIVE (nothing showed either way). With --show, prints the latest check without starting one.

Options:
  --ports LIST   Guest TCP ports whose banner/reply counts as evidence (default 22,3389)
  --marker TEXT  Serial-console text that also counts as evidence
  --show         Show the latest check; start nothing
  --json         The verification as JSON on stdout

Exit codes: 0 VERIFIED, 1 FAILED, INCONCLUSIVE or error, 2 usage.
`,
};

export const VERIFY_COMMANDS: Record<string, { options: Options; positionals?: boolean; run: (ctx: CommandContext) => Promise<number> }> = {
  verify: {
    options: { ports: { type: "string" }, marker: { type: "string" }, show: { type: "boolean" }, json: { type: "boolean" } },
    positionals: true,
    run: verify,
  },
};

const FINISHED = new Set(["VERIFIED", "FAILED", "INCONCLUSIVE"]);

/** The boot check in words: verdict, evidence (one line each, with when), screen text, screenshot. */
export function printVerification(out: NodeJS.WritableStream, v: VerificationFieldsFragment | null | undefined): void {
  const words = verdictWords(v);
  out.write(`Boot check: ${words.text}\n`);
  if (!v) return;
  for (const e of v.evidence) out.write(`  ${formatEvidence(e)}\n`);
  const text = v.screenText?.trim();
  if (text) out.write(`Screen text:\n${text.split("\n").filter((l) => l.trim()).map((l) => `  | ${l}`).join("\n")}\n`);
  if (v.screenshotUrl) out.write(`Screenshot (link valid for a few minutes): ${v.screenshotUrl}\n`);
}

function formatEvidence(e: VerificationFieldsFragment["evidence"][number]): string {
  const w = evidenceWords(e);
  const at = new Date(e.at as string).toISOString().slice(11, 19);
  return `${w.mark} ${at} ${w.text}${e.failure ? " (failure)" : ""}`;
}

async function verify({ io, values, positionals, settings }: CommandContext): Promise<number> {
  const backupId = positionals[0];
  if (!backupId || positionals.length > 1) throw new UsageError("give exactly one backup id (see `reclo backups`)");
  const client = authedClient(settings);
  const read = async () => (await client.request(BackupVerificationResultDocument, { id: backupId })).backup.verification;
  let v: VerificationFieldsFragment | null | undefined;
  if (values.show) {
    v = await read();
  } else {
    const raw = str(values.ports);
    let ports: number[] | undefined;
    if (raw !== undefined) {
      ports = raw.split(",").map((p) => Number(p.trim()));
      if (!ports.length || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw new UsageError("--ports takes TCP ports 1-65535, comma-separated");
    }
    const started = await client.request(VerifyBackupDocument, { input: { backupId, ports, bootMarker: str(values.marker) } });
    if (!values.json) io.stdout.write(`Checking that backup ${backupId} starts (verification ${started.verifyBackup.id})…\n`);
    let shown = 0;
    for (;;) {
      v = await read();
      if (!v || v.id !== started.verifyBackup.id) throw new CliError("the verification disappeared", "NOT_FOUND");
      if (!values.json) for (; shown < v.evidence.length; shown++) io.stdout.write(`  ${formatEvidence(v.evidence[shown]!)}\n`);
      if (FINISHED.has(v.status)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  if (values.json) io.stdout.write(`${JSON.stringify(v ?? null, null, 2)}\n`);
  else if (values.show) printVerification(io.stdout, v);
  else {
    const words = verdictWords(v);
    io.stdout.write(`Boot check: ${words.text}\n`);
    if (v?.screenshotUrl) io.stdout.write(`Screenshot (link valid for a few minutes): ${v.screenshotUrl}\n`);
  }
  return v?.status === "VERIFIED" && verdictWords(v).tone === "good" ? 0 : 1;
}
