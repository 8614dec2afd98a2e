/** Plain-text output: dates and tables as the CLI prints them. */

/** "2026-11-26 08:30:46 UTC"; "-" for none. */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "-";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A left-aligned table (columns in `right` right-aligned), two spaces between columns. */
export function printTable(out: NodeJS.WritableStream, header: string[], rows: string[][], opts: { right?: number[] } = {}): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  const right = new Set(opts.right ?? []);
  for (const row of all) out.write(`${row.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd()}\n`);
}

/** What the encryption alarm says about a restore point (the fields `reclo backups` and the picker read). */
interface AlarmPoint {
  id: string;
  sourceName: string;
  status?: string;
  suspect: { changedPercent: number; verdict: string | null } | null;
}

/**
 * The encryption alarm's marks for a newest-first list of restore points: a suspect one (possible
 * ransomware, unanswered), one its owner called ENCRYPTED, and — per source with an unanswered
 * alarm — the newest clean restore point older than it ("last clean": the one to recover from).
 */
export function alarmMarks(points: readonly AlarmPoint[]): Map<string, string> {
  const marks = new Map<string, string>();
  const alarmed = new Set<string>();
  for (const p of points) {
    const s = p.suspect;
    if (s && !s.verdict) {
      marks.set(p.id, `SUSPECT: possible ransomware (${s.changedPercent} % changed)`);
      alarmed.add(p.sourceName);
    } else if (s?.verdict === "ENCRYPTED") {
      marks.set(p.id, "ENCRYPTED (your verdict)");
      alarmed.add(p.sourceName);
    } else if (alarmed.has(p.sourceName) && (p.status ?? "COMPLETED") === "COMPLETED") {
      marks.set(p.id, "last clean");
      alarmed.delete(p.sourceName);
    }
  }
  return marks;
}
