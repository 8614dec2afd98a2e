/** What the encryption alarm says about a restore point (the fields the CLI and the console read). */
export interface AlarmPoint {
  id: string;
  sourceName: string;
  status?: string;
  suspect: { changedPercent: number; verdict: string | null } | null;
}

export type AlarmMark = "SUSPECT" | "ENCRYPTED" | "LAST_CLEAN";

/**
 * The encryption alarm's marks for a newest-first list of restore points: a suspect one (possible
 * ransomware, unanswered), one its owner called ENCRYPTED, and — per source with such a point — the
 * newest completed clean restore point older than it (LAST_CLEAN: the one to recover from). Shared
 * by `reclo backups`, the `reclo recover` picker and the console's restore points.
 */
export function restorePointAlarms(points: readonly AlarmPoint[]): Map<string, AlarmMark> {
  const marks = new Map<string, AlarmMark>();
  const alarmed = new Set<string>();
  for (const p of points) {
    const s = p.suspect;
    if (s && !s.verdict) {
      marks.set(p.id, "SUSPECT");
      alarmed.add(p.sourceName);
    } else if (s?.verdict === "ENCRYPTED") {
      marks.set(p.id, "ENCRYPTED");
      alarmed.add(p.sourceName);
    } else if (alarmed.has(p.sourceName) && (p.status ?? "COMPLETED") === "COMPLETED") {
      marks.set(p.id, "LAST_CLEAN");
      alarmed.delete(p.sourceName);
    }
  }
  return marks;
}
