import { and, desc, eq, isNotNull, lt } from "drizzle-orm";
import type { Db } from "../db/client";
import { backups, type BackupRow, type BackupSuspicion } from "../db/schema";
import type { ChunkStore } from "../storage/chunk-store";
import { sampleEntropy } from "../shared/bytes";

/** When an incremental looks like a disk being encrypted (all configurable; see config BACKUP_ALARM_*). */
export interface EncryptionAlarmOptions {
  /** At least this share of the image's chunks changed (percent)… */
  minChangedPercent: number;
  /**
   * …and at least this many chunks. An image with fewer chunks is not skipped: a share of a few
   * chunks is coarse (any change to a one-chunk image is 100 %), so it is alarmed only when all of it
   * turned random (3 of 3 chunks; 2 of 3 is not) and the source has a usual rate to jump from (at
   * least one earlier incremental): its first incremental says nothing about what is usual.
   */
  minChangedChunks: number;
  /** And at least this many times the source's usual change rate. */
  minRatio: number;
  /** The usual rate is never taken below this (percent): a source that barely changes is not alarmed by 5 % changes. */
  usualFloorPercent: number;
  /** And the new chunks' mean entropy is at least this (bits/byte; random data is ~8, text and code 4–6). */
  minEntropy: number;
  /** The usual rate is the median of this many recent incrementals of the source. */
  historySize: number;
  /** New chunks the server reads back and measures itself. */
  sampleChunks: number;
  /** While an alarm is unresolved, retention keeps this many of the source's newest clean restore points. */
  keepClean: number;
}

export const DEFAULT_ENCRYPTION_ALARM: EncryptionAlarmOptions = {
  minChangedPercent: 50,
  minChangedChunks: 4,
  minRatio: 5,
  usualFloorPercent: 1,
  minEntropy: 7.5,
  historySize: 10,
  sampleChunks: 4,
  keepClean: 3,
};

export interface AlarmVerdict {
  changedChunks: number | null;
  suspect: BackupSuspicion | null;
}

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * The encryption alarm (issue 18): while an incremental completes, how much of the image changed
 * against its parent is compared with the source's usual change rate, and — only when the change is
 * large — a few new chunks are read back from the store and their entropy measured here, whatever
 * the agent reported. A jump to most of the disk of random-looking data makes the restore point
 * suspect.
 */
export class EncryptionAlarm {
  constructor(
    private readonly db: Db,
    private readonly store: ChunkStore,
    public opts: EncryptionAlarmOptions = DEFAULT_ENCRYPTION_ALARM,
  ) {}

  async evaluate(backup: BackupRow, chunks: (string | null)[], agentEntropy: number | null): Promise<AlarmVerdict> {
    if (backup.kind !== "INCREMENTAL" || !backup.parentId) return { changedChunks: null, suspect: null };
    const parent = await this.store.getManifest(backup.userId, backup.parentId).catch(() => null);
    if (!parent || parent.chunks.length !== chunks.length) return { changedChunks: null, suspect: null };
    const before = new Set(parent.chunks.filter((s): s is string => s !== null));
    const changed: number[] = [];
    const fresh: string[] = [];
    chunks.forEach((sha, i) => {
      if (sha === parent.chunks[i]) return;
      changed.push(i);
      if (sha !== null && !before.has(sha) && !fresh.includes(sha)) fresh.push(sha);
    });
    const changedPercent = (changed.length / Math.max(1, chunks.length)) * 100;
    const history = await this.db
      .select({ changedChunks: backups.changedChunks, chunkCount: backups.chunkCount })
      .from(backups)
      .where(
        and(
          eq(backups.userId, backup.userId),
          eq(backups.sourceName, backup.sourceName),
          eq(backups.kind, "INCREMENTAL"),
          eq(backups.status, "COMPLETED"),
          isNotNull(backups.changedChunks),
          lt(backups.id, backup.id),
        ),
      )
      .orderBy(desc(backups.id))
      .limit(this.opts.historySize);
    const usual = median(history.map((h) => ((h.changedChunks ?? 0) / Math.max(1, h.chunkCount)) * 100));
    const o = this.opts;
    const base = Math.max(usual ?? 0, o.usualFloorPercent);
    const small = chunks.length < o.minChangedChunks;
    const enough = small ? changed.length === chunks.length && usual !== null : changed.length >= o.minChangedChunks;
    if (!enough || changedPercent < o.minChangedPercent || changedPercent < o.minRatio * base || fresh.length === 0) return { changedChunks: changed.length, suspect: null };

    // A large jump: measure the new data ourselves (evenly spread sample of the new chunks).
    const n = Math.min(o.sampleChunks, fresh.length);
    const picks = Array.from({ length: n }, (_, k) => fresh[Math.floor(((k + 0.5) * fresh.length) / n)]!);
    let sum = 0;
    for (const sha of picks) sum += sampleEntropy(await this.store.getChunk(backup.userId, sha));
    const entropy = sum / n;
    if (entropy < o.minEntropy) return { changedChunks: changed.length, suspect: null };
    const lied = agentEntropy !== null && agentEntropy < o.minEntropy;
    return {
      changedChunks: changed.length,
      suspect: {
        reason:
          `${round(changedPercent, 1)} % of the disk changed (usually ${usual === null ? "no history" : `${round(usual, 1)} %`}) into data that looks encrypted ` +
          `(${round(entropy)} bits/byte measured on ${n} chunk(s) read back)` +
          (lied ? `; the agent reported ${round(agentEntropy)} bits/byte, far below what the server measured` : ""),
        changedPercent: round(changedPercent),
        usualPercent: usual === null ? null : round(usual),
        entropy: round(entropy, 3),
        agentEntropy: agentEntropy === null ? null : round(agentEntropy, 3),
        sampledChunks: n,
      },
    };
  }
}
