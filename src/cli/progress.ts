/**
 * Backup progress: the events the engine emits, a tracker that turns counters into rate and ETA
 * (throttled progress events), and the two renderers of `reclo backup` — JSON lines on stdout, or
 * one redrawn progress-bar line on a terminal.
 */

export type BackupKind = "FULL" | "INCREMENTAL";

export interface StartEvent {
  event: "start";
  backupId: string;
  kind: BackupKind;
  imageSize: number;
  chunkSize: number;
  chunkCount: number;
  resumed: boolean;
  parentId: string | null;
  sourceName: string;
}

export interface ProgressEvent {
  event: "progress";
  /** Image bytes read and hashed so far. */
  hashedBytes: number;
  /** Bytes this process PUT successfully. */
  sentBytes: number;
  chunksSent: number;
  /** Chunks that need no upload: all-zero, already stored, or a repeat within this image. */
  chunksSkipped: number;
  zeroChunks: number;
  chunksAlreadyStored: number;
  /** Image bytes fully dealt with (hashed and skipped, or hashed and uploaded). */
  processedBytes: number;
  /** processedBytes per second over the last few seconds. */
  rateBytesPerSec: number;
  /** Seconds left at that rate; null until there is a rate. */
  etaSeconds: number | null;
}

export interface ChunkUploadedEvent {
  event: "chunk-uploaded";
  index: number;
  size: number;
}

export interface DoneEvent {
  event: "done";
  backupId: string;
  kind: BackupKind;
  status: string;
  /** As reported by the server: bytes the backup sent over all its runs. */
  uploadedBytes: number;
  /** Bytes this process PUT. */
  sentBytes: number;
  chunksUploaded: number;
  chunksAlreadyStored: number;
  zeroChunks: number;
  sha256: string;
  seconds: number;
  resumed: boolean;
}

export interface ErrorEvent {
  event: "error";
  message: string;
  code: string;
}

export type BackupEvent = StartEvent | ProgressEvent | ChunkUploadedEvent | DoneEvent;

export interface ProgressCounters {
  hashedBytes: number;
  sentBytes: number;
  chunksSent: number;
  zeroChunks: number;
  chunksAlreadyStored: number;
  chunksDeduplicated: number;
  processedBytes: number;
}

/** Counters plus a sliding-window rate; emits `progress` events at most every `intervalMs` unless forced. */
export class ProgressTracker {
  readonly c: ProgressCounters = { hashedBytes: 0, sentBytes: 0, chunksSent: 0, zeroChunks: 0, chunksAlreadyStored: 0, chunksDeduplicated: 0, processedBytes: 0 };
  private lastEmit = 0;
  private readonly samples: { t: number; bytes: number }[] = [];
  private readonly started: number;

  constructor(
    private readonly totalBytes: number,
    private readonly emit: (e: ProgressEvent) => void,
    private readonly intervalMs = 250,
    private readonly windowMs = 5000,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.started = this.clock();
    this.samples.push({ t: this.started, bytes: 0 });
  }

  snapshot(): ProgressEvent {
    const now = this.clock();
    const c = this.c;
    const last = this.samples[this.samples.length - 1];
    if (!last || now - last.t >= 100 || last.bytes !== c.processedBytes) this.samples.push({ t: now, bytes: c.processedBytes });
    while (this.samples.length > 2 && now - this.samples[0]!.t > this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (now - first.t) / 1000;
    // Early on, the window is short: fall back to the average since the start.
    const rate = dt >= 1 ? (c.processedBytes - first.bytes) / dt : (now - this.started) / 1000 > 0.05 ? c.processedBytes / ((now - this.started) / 1000) : 0;
    const left = Math.max(0, this.totalBytes - c.processedBytes);
    return {
      event: "progress",
      hashedBytes: c.hashedBytes,
      sentBytes: c.sentBytes,
      chunksSent: c.chunksSent,
      chunksSkipped: c.zeroChunks + c.chunksAlreadyStored + c.chunksDeduplicated,
      zeroChunks: c.zeroChunks,
      chunksAlreadyStored: c.chunksAlreadyStored,
      processedBytes: c.processedBytes,
      rateBytesPerSec: Math.round(rate),
      etaSeconds: left === 0 ? 0 : rate > 0 ? Math.round(left / rate) : null,
    };
  }

  /** Emits a progress event when the interval has passed (or always when forced). */
  tick(force = false): void {
    const now = this.clock();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    this.emit(this.snapshot());
  }

  elapsedSeconds(): number {
    return (this.clock() - this.started) / 1000;
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "?";
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(v) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${n < 0 ? "-" : ""}${s} ${UNITS[u]}`;
}

/** 3725 → "1:02:05", 65 → "1:05". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

// ---------------------------------------------------------------------------------------------
// Renderers

export interface Reporter {
  onEvent(e: BackupEvent): void;
  info(message: string): void;
  error(e: ErrorEvent): void;
  /** Clears any partial line (before the process writes something else or exits). */
  close(): void;
}

/** One JSON object per line on `out` (stdout), for scripts and non-terminals. */
export class JsonLinesReporter implements Reporter {
  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}

  onEvent(e: BackupEvent): void {
    this.out.write(`${JSON.stringify(e)}\n`);
  }

  info(message: string): void {
    this.out.write(`${JSON.stringify({ event: "info", message })}\n`);
  }

  error(e: ErrorEvent): void {
    this.out.write(`${JSON.stringify(e)}\n`);
  }

  close(): void {}
}

/** A single progress-bar line on a terminal (stderr), redrawn at most ~10 times a second. */
export class TtyProgressBar implements Reporter {
  private start: StartEvent | null = null;
  private last: ProgressEvent | null = null;
  private drawn = false;
  private lastDraw = 0;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly summaryOut: NodeJS.WritableStream = process.stdout,
  ) {}

  onEvent(e: BackupEvent): void {
    switch (e.event) {
      case "start":
        this.start = e;
        this.line(
          `${e.resumed ? "Resuming" : "Starting"} ${e.kind} backup ${e.backupId} of ${e.sourceName}: ${formatBytes(e.imageSize)} in ${e.chunkCount} chunk(s) of ${formatBytes(e.chunkSize)}${e.parentId ? ` (parent ${e.parentId})` : ""}`,
        );
        return;
      case "progress":
        this.last = e;
        if (performance.now() - this.lastDraw >= 100) this.draw();
        return;
      case "chunk-uploaded":
        return;
      case "done":
        this.clear();
        this.summaryOut.write(
          `Backup ${e.backupId} ${e.status} (${e.kind}${e.resumed ? ", resumed" : ""}): ${formatBytes(this.start?.imageSize ?? 0)} image, ` +
            `${formatBytes(e.sentBytes)} sent now, ${formatBytes(e.uploadedBytes)} uploaded in total, ${e.zeroChunks} zero and ${e.chunksAlreadyStored} already-stored chunk(s) skipped, ` +
            `${e.seconds.toFixed(1)} s\n  sha256 ${e.sha256}\n`,
        );
    }
  }

  info(message: string): void {
    this.line(message);
  }

  error(e: ErrorEvent): void {
    this.clear();
    this.out.write(`reclo: ${e.message}\n`);
  }

  close(): void {
    this.clear();
  }

  private line(text: string): void {
    this.clear();
    this.out.write(`${text}\n`);
    if (this.last) this.draw();
  }

  private draw(): void {
    const p = this.last;
    const total = this.start?.imageSize ?? 0;
    if (!p || !total) return;
    this.lastDraw = performance.now();
    const cols = Math.max(40, this.out.columns || 80);
    const frac = Math.min(1, p.processedBytes / total);
    // Most important first: the line is cut at the terminal width.
    const text =
      ` ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(p.rateBytesPerSec)}/s ETA ${formatDuration(p.etaSeconds)}` +
      ` | hashed ${formatBytes(p.hashedBytes)}/${formatBytes(total)} sent ${formatBytes(p.sentBytes)}` +
      ` | skipped ${p.chunksSkipped} (${p.zeroChunks} zero, ${p.chunksAlreadyStored} stored)`;
    const barWidth = Math.max(10, Math.min(30, cols - text.length - 3));
    const filled = Math.round(frac * barWidth);
    const line = `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]${text}`;
    this.out.write(`\r\x1b[2K${line.slice(0, cols - 1)}`);
    this.drawn = true;
  }

  private clear(): void {
    if (!this.drawn) return;
    this.out.write("\r\x1b[2K");
    this.drawn = false;
  }
}
