import { BootCheckAbortedError, collectBootEvidence, ocrImage, POSITIVE_KINDS, probeFor, type BootEvidenceOptions, type BootEvidenceResult, type BootProbe, type BootVerdict, type Evidence } from "../evidence";
import type { ComputeTarget, ConsoleScreenshot, StatusChecks } from "../compute/target";
import { inspectPng } from "../evidence/png";

/**
 * "Checking it started": the boot-evidence collector (src/evidence) run on a freshly
 * recovered machine.
 *   LOCAL  screen OCR, the serial marker (when configured), the firmware log, and a banner/reply read
 *          on the machine's loopback forwards of 22 and 3389;
 *   AWS    EC2's reachability checks (DescribeInstanceStatus: system + instance "ok" is a positive
 *          signal — the guest's own network stack answers; "impaired" is a failure) alongside the
 *          collector on GetConsoleScreenshot (OCR). The worker usually cannot reach the machine's
 *          ports (they admit only the customer's CIDR), so no service is probed there.
 * The verdict: FAILED on any failure signature, VERIFIED on a positive signal, else INCONCLUSIVE.
 */
/** The collector's options (same meaning), on a compute target's machine. */
export interface BootCheckOptions extends BootEvidenceOptions {
  target: ComputeTarget;
  instanceId: string;
}

export interface BootCheckResult extends Omit<BootEvidenceResult, "bootSeconds"> {
  /** When the first positive signal was seen (epoch ms), when there was one. */
  firstPositiveAtMs?: number;
}

/** Evidence kinds that prove a boot; on AWS the provider's reachability checks (MACHINE) count too. */
const provesOn = (kind: Evidence["kind"], aws: boolean) => POSITIVE_KINDS.includes(kind) || (aws && kind === "MACHINE");

export async function runBootCheck(opts: BootCheckOptions): Promise<BootCheckResult> {
  if (opts.target.kind === "AWS" && opts.target.statusChecks) return awsBootCheck(opts);
  const probe = probeFor(opts.target, opts.instanceId, opts.launchedAtMs);
  const { target: _target, instanceId: _instanceId, ...collectorOptions } = opts;
  const r = await collectBootEvidence(probe, collectorOptions);
  return { verdict: r.verdict, evidence: r.evidence, reason: r.reason, screenText: r.screenText, screenshot: r.screenshot, firstPositiveAtMs: firstPositive(r.evidence, false) };
}

function firstPositive(evidence: Evidence[], aws: boolean): number | undefined {
  const times = evidence.filter((e) => e.ok && !e.failure && provesOn(e.kind, aws)).map((e) => Date.parse(e.at));
  return times.length ? Math.min(...times) : undefined;
}

function describeChecks(c: StatusChecks): string {
  return `system reachability ${c.system}, instance reachability ${c.instance}${c.details?.length ? ` (${c.details.join(", ")})` : ""}`;
}

async function awsBootCheck(opts: BootCheckOptions): Promise<BootCheckResult> {
  const now = opts.now ?? Date.now;
  const target = opts.target;
  // After the status checks decided, the screen may still corroborate for a little while (two polls, at least 5 s).
  const grace = Math.min(opts.graceMs ?? Infinity, Math.max(5000, 2 * opts.pollIntervalMs));
  const evidence: Evidence[] = [];
  const record = async (e: Evidence) => {
    evidence.push(e);
    await opts.onEvidence?.(e);
  };
  // The screen through GetConsoleScreenshot; the last one is kept in case the collector is stopped.
  const base = probeFor(target, opts.instanceId, opts.launchedAtMs);
  let lastShot: ConsoleScreenshot | undefined;
  const probe: BootProbe = {
    state: base.state,
    consoleOutput: base.consoleOutput,
    screenshot: async () => (lastShot = await base.screenshot!()),
  };
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let collectorDone = false;
  const { target: _target, instanceId: _instanceId, ...collectorOptions } = opts;
  const collecting = collectBootEvidence(probe, { ...collectorOptions, ports: [], signal: stop.signal, onEvidence: record }).then(
    (r) => ((collectorDone = true), { r }),
    (err: unknown) => ((collectorDone = true), { err }),
  );

  let decidedAt: number | undefined;
  let lastChecks: StatusChecks | undefined;
  let checksError: string | undefined;
  try {
    while (!collectorDone) {
      if (opts.signal?.aborted) break;
      if (decidedAt === undefined) {
        try {
          const c = await target.statusChecks!(opts.instanceId);
          checksError = undefined;
          lastChecks = c;
          const at = now();
          if (c.system === "impaired" || c.instance === "impaired") {
            decidedAt = at;
            await record({ kind: "MACHINE", ok: false, failure: true, detail: `EC2 status checks failed: ${describeChecks(c)}`, at: new Date(at).toISOString() });
          } else if (c.system === "ok" && c.instance === "ok") {
            decidedAt = at;
            await record({ kind: "MACHINE", ok: true, failure: false, detail: `EC2 status checks passed: ${describeChecks(c)} (the guest's network stack answers)`, at: new Date(at).toISOString() });
          }
        } catch (err) {
          // A throttled or failing DescribeInstanceStatus is retried on the next poll and reported if it never answers.
          checksError = err instanceof Error ? err.message : String(err);
        }
      }
      // The checks decided: the screen may still corroborate (a login screen, or the panic behind an impaired check).
      if (decidedAt !== undefined && now() - decidedAt >= grace) break;
      await Promise.race([collecting, sleep(opts.pollIntervalMs)]);
    }
  } finally {
    if (!collectorDone) stop.abort();
    opts.signal?.removeEventListener("abort", onAbort);
  }
  const outcome = await collecting;
  if (opts.signal?.aborted) throw new BootCheckAbortedError();
  if ("err" in outcome && !(outcome.err instanceof BootCheckAbortedError)) throw outcome.err;
  const collected = "r" in outcome ? outcome.r : undefined;

  if (decidedAt === undefined) {
    const detail = checksError
      ? `EC2 status checks could not be read: ${checksError}`
      : lastChecks
        ? `EC2 status checks did not pass before the check ended: ${describeChecks(lastChecks)}`
        : "EC2 status checks: the instance was not listed yet";
    await record({ kind: "MACHINE", ok: false, failure: false, detail, at: new Date(now()).toISOString() });
  }
  let screenText = collected?.screenText;
  if (!collected) {
    // The collector was stopped once the status checks decided: read the last screen it took.
    if (!evidence.some((e) => e.kind === "SCREEN")) {
      let detail = "No console screenshot was available yet";
      if (lastShot && isUniform(lastShot)) detail = "Screen is blank";
      else if (lastShot) {
        try {
          screenText = await ocrImage(lastShot.bytes, { tesseract: opts.tesseract, timeoutMs: 30_000 });
          detail = screenText.trim() ? `No login prompt or sign-in screen recognised yet; the screen reads "${screenText.trim().slice(0, 160)}"` : "No text recognised on the screen yet";
        } catch (err) {
          detail = `Screen could not be read: ${err instanceof Error ? err.message : String(err)}`;
        }
      }
      await record({ kind: "SCREEN", ok: false, failure: false, detail, at: new Date(now()).toISOString() });
    }
  }
  evidence.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const failures = evidence.filter((e) => e.failure);
  const firstPositiveAtMs = firstPositive(evidence, true);
  const verdict: BootVerdict = failures.length ? "FAILED" : firstPositiveAtMs !== undefined ? "VERIFIED" : "INCONCLUSIVE";
  const reason =
    verdict === "FAILED"
      ? failures.map((e) => e.detail).join("; ")
      : verdict === "INCONCLUSIVE"
        ? (collected?.reason ?? `Nothing showed that the machine started or failed within ${Math.round(opts.timeoutMs / 1000)} s`)
        : undefined;
  return { verdict, evidence, reason, screenText, screenshot: collected?.screenshot ?? lastShot, firstPositiveAtMs };
}

/** A PNG of one colour (EC2 screenshots are JPEG: never judged blank here, OCR reads them). */
function isUniform(shot: ConsoleScreenshot): boolean {
  if (shot.contentType !== "image/png") return false;
  try {
    return inspectPng(shot.bytes).uniform;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
