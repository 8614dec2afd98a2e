import { createHash } from "node:crypto";
import type { ConsoleScreenshot } from "../compute/target";
import { inspectPng } from "./png";
import { OcrUnavailableError, ocrImage } from "./ocr";
import { probeService } from "./service-probe";
import { FIRMWARE_FAILURES, FIRMWARE_HANDOVER, SCREEN_FAILURES, SCREEN_SUCCESSES, clip, matchSignatures } from "./signatures";
import { POSITIVE_KINDS, type BootEvidenceOptions, type BootEvidenceResult, type BootProbe, type Evidence, type EvidenceKind } from "./types";

const DEFAULT_GRACE_MS = 10_000;
/** After a failure signature, wait at most this long for the screen to corroborate it. */
const FAILURE_GRACE_MS = 5_000;

/** The collection was stopped through `signal`. */
export class BootCheckAbortedError extends Error {
  constructor() {
    super("boot check aborted");
    this.name = "BootCheckAbortedError";
  }
}

/**
 * Watches a starting machine and collects evidence of several kinds until the verdict is clear:
 *   FAILED        a failure signature (firmware log, screen) or the machine stopped; the collector
 *                 waits briefly for the screen to corroborate a firmware failure;
 *   VERIFIED      a positive SERVICE, SCREEN or MARKER signal and no failure signature; after the
 *                 first one it keeps collecting (the other ports, a second screenshot to tell whether
 *                 the screen has settled) until nothing is left to learn or `graceMs` has passed;
 *   INCONCLUSIVE  nothing decisive before launchedAtMs + timeoutMs.
 * `bootSeconds` is the time from launch to the first positive signal as observed, never a timer.
 * Evidence is reported through `onEvidence` as it is seen and returned in full.
 */
export async function collectBootEvidence(probe: BootProbe, opts: BootEvidenceOptions): Promise<BootEvidenceResult> {
  const now = opts.now ?? Date.now;
  const grace = opts.graceMs ?? DEFAULT_GRACE_MS;
  const ports = [...new Set(opts.ports)];
  const evidence: Evidence[] = [];
  // The checks run in parallel; onEvidence hears about each item once, in order, one at a time.
  let reported: Promise<void> = Promise.resolve();
  const record = async (kind: EvidenceKind, ok: boolean, failure: boolean, detail: string, atMs = now()): Promise<Evidence> => {
    const e: Evidence = { kind, ok, failure, detail, at: new Date(atMs).toISOString() };
    evidence.push(e);
    const next = reported.then(() => opts.onEvidence?.(e));
    reported = next.catch(() => undefined);
    await next;
    return e;
  };
  const checkAbort = () => {
    if (opts.signal?.aborted) throw new BootCheckAbortedError();
  };

  let firstPositiveMs: number | undefined;
  let firstFailureMs: number | undefined;
  let pollsSinceFailure = 0;
  const positive = (atMs: number) => {
    if (firstPositiveMs === undefined || atMs < firstPositiveMs) firstPositiveMs = atMs;
  };
  const failure = (atMs: number) => (firstFailureMs ??= atMs);

  // Firmware.
  const firmwareSeen = new Set<string>();
  let handover = false;
  // Marker.
  let markerSeen = false;
  // Screen.
  let lastHash: string | undefined;
  let lastShot: ConsoleScreenshot | undefined;
  let lastText: string | undefined;
  let lastBlank = false;
  let screenFailureSeen = false;
  const screenFailures = new Set<string>();
  let screenPositiveRecorded = false;
  let pendingScreenPositive: { detail: string; atMs: number } | undefined;
  let ocrUnavailable: string | undefined;
  let ocrError: string | undefined;
  let screenError: string | undefined;
  let shots = 0;
  // Services.
  const portOk = new Set<number>();
  const portLast = new Map<number, string>();
  let endpointsError: string | undefined;

  const readFirmware = async () => {
    if (!probe.firmwareLog) return;
    const log = await probe.firmwareLog().catch(() => "");
    const at = now();
    for (const m of matchSignatures(log, FIRMWARE_FAILURES)) {
      if (firmwareSeen.has(m.name)) continue;
      firmwareSeen.add(m.name);
      failure(at);
      await record("FIRMWARE", false, true, `log says "${m.line}"`, at);
    }
    if (!handover && FIRMWARE_HANDOVER.pattern.test(log)) {
      handover = true;
      await record("FIRMWARE", true, false, "handed over to the disk's boot loader (\"Booting from Hard Disk\")", at);
    }
  };

  const readMarker = async () => {
    if (!opts.bootMarker || markerSeen || !probe.consoleOutput) return;
    const out = await probe.consoleOutput().catch(() => "");
    if (out.includes(opts.bootMarker)) {
      markerSeen = true;
      const at = now();
      positive(at);
      await record("MARKER", true, false, `"${clip(opts.bootMarker, 80)}" seen on the serial console`, at);
    }
  };

  const readScreen = async () => {
    if (!probe.screenshot) return;
    let shot: ConsoleScreenshot;
    const at = now();
    try {
      shot = await probe.screenshot();
    } catch (err) {
      screenError = err instanceof Error ? err.message : String(err);
      return;
    }
    shots++;
    const hash = createHash("sha256").update(shot.bytes).digest("hex");
    const samePicture = hash === lastHash;
    lastHash = hash;
    lastShot = shot;
    let text = lastText;
    if (!samePicture) {
      // Only a PNG is judged blank here (a JPEG's pixels are not decoded); OCR reads both.
      try {
        lastBlank = shot.contentType === "image/png" && inspectPng(shot.bytes).uniform;
      } catch {
        lastBlank = false;
      }
      if (lastBlank) text = "";
      else if (!ocrUnavailable) {
        try {
          text = await ocrImage(shot.bytes, { tesseract: opts.tesseract, signal: opts.signal, timeoutMs: 30_000 });
        } catch (err) {
          if (err instanceof OcrUnavailableError) ocrUnavailable = err.message;
          else if (!opts.signal?.aborted) ocrError = err instanceof Error ? err.message : String(err);
          text = undefined;
        }
      } else text = undefined;
    }
    // Settled: the same picture, or the same text (a blinking cursor changes the picture only).
    const settled = samePicture || (text !== undefined && lastText !== undefined && text.trim() === lastText.trim());
    const changed = !settled;
    lastText = text;
    if (pendingScreenPositive) {
      // The shot after the one that showed the prompt tells whether the screen has settled.
      const p = pendingScreenPositive;
      pendingScreenPositive = undefined;
      screenPositiveRecorded = true;
      await record("SCREEN", true, false, `${p.detail}; ${settled ? "the screen has settled (the same on the next screenshot)" : "the screen was still changing"}`, p.atMs);
    }
    if (!changed || text === undefined || !text.trim()) return;
    const failures = matchSignatures(text, SCREEN_FAILURES).filter((f) => !screenFailures.has(f.name));
    if (failures.length) {
      screenFailureSeen = true;
      for (const f of failures) screenFailures.add(f.name);
      failure(at);
      await record("SCREEN", false, true, `shows ${failures.map((f) => `${f.name}: "${f.line}"`).join("; ")}`, at);
      return;
    }
    if (screenPositiveRecorded || pendingScreenPositive) return;
    const successes = matchSignatures(text, SCREEN_SUCCESSES);
    if (successes.length) {
      positive(at);
      pendingScreenPositive = { detail: `shows ${successes.map((s) => `${s.name.toLowerCase()}: "${s.line}"`).join("; ")}`, atMs: at };
    }
  };

  let endpoints: Map<number, { host: string; port: number }> | undefined;
  const readServices = async () => {
    if (!ports.length || firstFailureMs !== undefined) return;
    if (!endpoints) {
      if (!probe.serviceEndpoints) {
        endpointsError = "this machine has no port forwards to probe";
        return;
      }
      try {
        endpoints = new Map((await probe.serviceEndpoints(ports)).map((e) => [e.guestPort, { host: e.host, port: e.port }]));
      } catch (err) {
        endpointsError = err instanceof Error ? err.message : String(err);
        return;
      }
    }
    await Promise.all(
      ports
        .filter((p) => !portOk.has(p))
        .map(async (guestPort) => {
          const ep = endpoints!.get(guestPort);
          if (!ep) {
            portLast.set(guestPort, `port ${guestPort}: not forwarded, cannot be probed`);
            return;
          }
          const at = now();
          const r = await probeService(ep.host, ep.port, guestPort, { timeoutMs: 3000, signal: opts.signal });
          portLast.set(guestPort, r.detail);
          if (r.ok && !portOk.has(guestPort)) {
            portOk.add(guestPort);
            positive(at);
            await record("SERVICE", true, false, r.detail, at);
          }
        }),
    );
  };

  const finish = async (verdict: BootEvidenceResult["verdict"], reason?: string): Promise<BootEvidenceResult> => {
    // Whatever was checked and did not pass is part of the record too.
    if (pendingScreenPositive) {
      screenPositiveRecorded = true;
      await record("SCREEN", true, false, `${pendingScreenPositive.detail}; only one screenshot taken`, pendingScreenPositive.atMs);
      pendingScreenPositive = undefined;
    }
    if (opts.bootMarker && !markerSeen) await record("MARKER", false, false, `"${clip(opts.bootMarker, 80)}" not seen on the serial console`);
    if (!screenPositiveRecorded && !screenFailureSeen) {
      let detail: string;
      if (ocrUnavailable) detail = `could not be read: ${ocrUnavailable}`;
      else if (!shots) detail = `no screenshot could be taken${screenError ? `: ${screenError}` : ""}`;
      else if (lastBlank) detail = "blank";
      else if (lastText === undefined) detail = `could not be read${ocrError ? `: ${ocrError}` : ""}`;
      else if (!lastText.trim()) detail = "no text recognised";
      else detail = `no login prompt or sign-in screen; it reads "${clip(lastText, 160)}"`;
      await record("SCREEN", false, false, detail);
    }
    if (ports.length && firstFailureMs === undefined) {
      if (endpointsError) await record("SERVICE", false, false, `Services not probed: ${endpointsError}`);
      else for (const p of ports) if (!portOk.has(p)) await record("SERVICE", false, false, portLast.get(p) ?? `port ${p}: not probed`);
    }
    const result: BootEvidenceResult = { verdict, evidence, screenText: lastText, screenshot: lastShot };
    if (verdict === "VERIFIED" && firstPositiveMs !== undefined) result.bootSeconds = Math.round((firstPositiveMs - opts.launchedAtMs) / 10) / 100;
    if (reason) result.reason = reason;
    return result;
  };

  for (;;) {
    checkAbort();
    opts.onPoll?.();
    const state = await probe.state();
    if (state !== "running" && state !== "pending") {
      const at = now();
      failure(at);
      await record("MACHINE", false, true, `${state === "stopped" ? "powered off" : `became ${state}`} during the boot check`, at);
      return finish("FAILED", failureReason(evidence));
    }
    await Promise.all([readFirmware(), readMarker(), readScreen(), readServices()]);
    checkAbort();
    const t = now();
    if (firstFailureMs !== undefined) {
      // One more look after the first failure, so the firmware log and the screen (which print the
      // same failure a moment apart) can corroborate each other; never longer than FAILURE_GRACE_MS.
      pollsSinceFailure++;
      const screenSettledOnIt = screenFailureSeen && (firmwareSeen.size > 0 || !probe.firmwareLog || pollsSinceFailure >= 2);
      const screenCannotTell = (!probe.screenshot || ocrUnavailable !== undefined) && pollsSinceFailure >= 2;
      if (screenSettledOnIt || screenCannotTell || t - firstFailureMs >= Math.min(grace, FAILURE_GRACE_MS)) return finish("FAILED", failureReason(evidence));
    } else if (firstPositiveMs !== undefined) {
      const servicesDone = ports.every((p) => portOk.has(p)) || endpointsError !== undefined;
      const screenDone = screenPositiveRecorded || !probe.screenshot || ocrUnavailable !== undefined;
      const markerDone = !opts.bootMarker || markerSeen;
      if ((servicesDone && screenDone && markerDone) || t - firstPositiveMs >= grace) return finish("VERIFIED");
    } else if (t - opts.launchedAtMs >= opts.timeoutMs) {
      return finish("INCONCLUSIVE", `Nothing showed that the machine started or failed within ${Math.round(opts.timeoutMs / 1000)} s`);
    }
    await sleep(opts.pollIntervalMs, opts.signal);
  }
}

const KIND_WORD: Record<EvidenceKind, string> = { FIRMWARE: "Firmware", SCREEN: "Screen", SERVICE: "Service", MARKER: "Marker", MACHINE: "Machine" };

/** The failure evidence in words: "Firmware log says …; Screen shows …". */
export function failureReason(evidence: Evidence[]): string {
  return evidence
    .filter((e) => e.failure)
    .map((e) => `${KIND_WORD[e.kind]} ${e.detail}`)
    .join("; ");
}

/** At least one positive SERVICE, SCREEN or MARKER item and no failure signature. */
export function provesBoot(evidence: Evidence[]): boolean {
  return evidence.some((e) => e.ok && POSITIVE_KINDS.includes(e.kind)) && !evidence.some((e) => e.failure);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new BootCheckAbortedError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(new BootCheckAbortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
