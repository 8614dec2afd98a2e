/**
 * A boot check in words, for the CLI and the web console (plain TypeScript with no imports: bundled
 * into the browser too). "Verified" is only ever said with positive evidence recorded.
 */

export interface EvidenceLike {
  kind: string;
  ok: boolean;
  failure: boolean;
  detail: string;
  at: string | Date;
}

export interface VerificationLike {
  status: string;
  bootSeconds: number | null;
  failureReason: string | null;
  evidence?: readonly EvidenceLike[] | null;
}

const POSITIVE_KINDS = new Set(["SERVICE", "SCREEN", "MARKER"]);

export const EVIDENCE_KIND_LABEL: Record<string, string> = {
  FIRMWARE: "Firmware",
  SCREEN: "Screen",
  SERVICE: "Service",
  MARKER: "Serial marker",
  MACHINE: "Machine",
};

/** Positive SERVICE, SCREEN or MARKER evidence and no failure signature. */
export function provenBoot(v: VerificationLike): boolean {
  const ev = v.evidence ?? [];
  return ev.some((e) => e.ok && POSITIVE_KINDS.has(e.kind)) && !ev.some((e) => e.failure);
}

/** What proved the boot, shortly: "SSH, RDP, login prompt". */
export function proofSummary(v: VerificationLike): string {
  const out: string[] = [];
  for (const e of v.evidence ?? []) {
    if (!e.ok || !POSITIVE_KINDS.has(e.kind)) continue;
    if (e.kind === "SERVICE") {
      const port = /^port (\d+)/.exec(e.detail)?.[1];
      out.push(port === "22" ? "SSH" : port === "3389" ? "RDP" : `port ${port ?? "?"}`);
    } else if (e.kind === "SCREEN") out.push(/sign-in/i.test(e.detail) ? "sign-in screen" : "login prompt");
    else out.push("serial marker");
  }
  return [...new Set(out)].join(", ");
}

export type VerdictTone = "good" | "bad" | "unknown" | "running";

/** The verdict in words: `short` for tables, `text` for sentences. */
export function verdictWords(v: VerificationLike | null | undefined): { tone: VerdictTone; short: string; text: string } {
  if (!v) return { tone: "unknown", short: "not verified", text: "Not verified yet" };
  switch (v.status) {
    case "VERIFIED": {
      if (!provenBoot(v)) return { tone: "unknown", short: "unproven: no evidence recorded", text: "Unproven: this check recorded no evidence; run it again" };
      const secs = v.bootSeconds ?? 0;
      return {
        tone: "good",
        short: `verified: booted in ${secs.toFixed(1)} s (${proofSummary(v)})`,
        text: `Verified: it started up in ${Math.max(1, Math.round(secs))} s (${proofSummary(v)})`,
      };
    }
    case "FAILED":
      return { tone: "bad", short: `FAILED to boot${v.failureReason ? `: ${v.failureReason}` : ""}`, text: `Did not start: ${v.failureReason ?? "the check failed"}` };
    case "INCONCLUSIVE":
      return { tone: "unknown", short: "inconclusive: nothing seen", text: `Could not tell whether it starts: ${v.failureReason ?? "nothing was seen before the time limit"}` };
    default:
      return { tone: "running", short: "being verified…", text: "Being verified right now" };
  }
}

/** One piece of evidence in words: "✓ Service: port 22: SSH banner …" (✗ = failure signature, – = not seen). */
export function evidenceWords(e: EvidenceLike): { mark: string; text: string } {
  const mark = e.failure ? "✗" : e.ok ? "✓" : "–";
  return { mark, text: `${EVIDENCE_KIND_LABEL[e.kind] ?? e.kind}: ${e.detail}` };
}
