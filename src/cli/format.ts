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
