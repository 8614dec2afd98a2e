/** Plain-text output: dates and tables as the CLI prints them. */
import { restorePointAlarms, type AlarmPoint } from "../client/alarm-marks";

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

/** The encryption alarm's marks in words, for `reclo backups` and the recover picker. */
export function alarmMarks(points: readonly AlarmPoint[]): Map<string, string> {
  const words = new Map<string, string>();
  const suspect = new Map(points.map((p) => [p.id, p.suspect]));
  for (const [id, mark] of restorePointAlarms(points))
    words.set(id, mark === "SUSPECT" ? `SUSPECT: possible ransomware (${suspect.get(id)!.changedPercent} % changed)` : mark === "ENCRYPTED" ? "ENCRYPTED (your verdict)" : "last clean");
  return words;
}
