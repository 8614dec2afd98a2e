import { GraphQLRequestError, subscribe, type ReCloClient } from "../client/graphql-client";
import { ActiveUploadsDocument, UploadProgressDocument, type UploadFieldsFragment } from "../client/generated/graphql";
import { formatBytes, formatDuration } from "./progress";

/**
 * `reclo backups --watch`: follows uploads live (the `uploadProgress` subscription) until they end.
 * Without a source: every upload ACTIVE right now. With one: that source's latest upload (if it has
 * ended already, how it ended; if there is none yet, the next one). One line per update, or one
 * redrawn line on a terminal; the result says which uploads did not complete.
 */

export type UploadUpdate = UploadFieldsFragment;

export interface UploadWatchOptions {
  client: ReCloClient;
  sourceName?: string;
  onUpdate(u: UploadUpdate): void;
  signal?: AbortSignal;
}

/** The uploads followed, as they ended (or as last seen when detached). */
export async function watchUploads(o: UploadWatchOptions): Promise<UploadUpdate[]> {
  const ws = o.client.ws({ lazy: true, retryAttempts: 3 });
  try {
    if (o.sourceName) return [await follow(ws, { sourceName: o.sourceName }, o)].filter((u): u is UploadUpdate => u !== null);
    const active = (await o.client.request(ActiveUploadsDocument, { first: 100 })).uploads.edges.map((e) => e.node);
    const ended = await Promise.all(active.map((u) => follow(ws, { uploadId: u.id }, o)));
    return ended.filter((u): u is UploadUpdate => u !== null);
  } finally {
    await ws.dispose();
  }
}

async function follow(ws: ReturnType<ReCloClient["ws"]>, vars: { uploadId?: string; sourceName?: string }, o: UploadWatchOptions): Promise<UploadUpdate | null> {
  const iterator = subscribe(ws, UploadProgressDocument, vars);
  const onAbort = () => void iterator.return?.();
  o.signal?.addEventListener("abort", onAbort, { once: true });
  let last: UploadUpdate | null = null;
  try {
    for await (const result of iterator) {
      if (result.errors?.length) throw new GraphQLRequestError(result.errors, 200);
      const u = result.data?.uploadProgress;
      if (!u) continue;
      last = u;
      o.onUpdate(u);
      if (u.status !== "ACTIVE") return u;
    }
    return last;
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
}

/** "office-server  ACTIVE   42%  1.2 GiB of 2.8 GiB  35 MiB/s  ETA 45s" / "office-server  FAILED  …: <reason>". */
export function uploadLine(u: UploadUpdate): string {
  const total = u.bytesTotal ?? 0;
  const pct = total > 0 ? Math.min(100, Math.floor((u.bytesDone / total) * 100)) : 0;
  const head = `${u.sourceName}  ${u.status.padEnd(9)}`;
  const sent = `sent ${formatBytes(u.bytesSent)} (${u.chunksSent} chunk${u.chunksSent === 1 ? "" : "s"})`;
  switch (u.status) {
    case "ACTIVE":
      return `${head} ${String(pct).padStart(3)}%  ${formatBytes(u.bytesDone)} of ${formatBytes(total)}  ${formatBytes(u.rate)}/s  ETA ${formatDuration(u.etaSeconds)}  ${sent}`;
    case "COMPLETED":
      return `${head} 100%  ${formatBytes(total)}  ${sent}`;
    default:
      return `${head} ${String(pct).padStart(3)}%  ${sent}: ${u.failureReason ?? "no reason given"}`;
  }
}

/**
 * How `reclo backups --watch` prints: JSON lines; one line per update (not a terminal); or on a
 * terminal one line redrawn in place while an upload runs, its end left on screen.
 */
export class UploadPrinter {
  private drawn = false;

  constructor(
    private readonly out: { write(s: string): unknown },
    private readonly mode: "json" | "lines" | "tty",
  ) {}

  update(u: UploadUpdate): void {
    if (this.mode === "json") return void this.out.write(`${JSON.stringify(u)}\n`);
    const line = uploadLine(u);
    if (this.mode === "lines") return void this.out.write(`${line}\n`);
    this.out.write(`\r\x1b[2K${line}${u.status === "ACTIVE" ? "" : "\n"}`);
    this.drawn = u.status === "ACTIVE";
  }

  /** Ends a line still being redrawn (detached while an upload ran). */
  close(): void {
    if (this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
