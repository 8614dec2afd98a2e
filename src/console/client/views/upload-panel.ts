import { subscribe } from "../api";
import { fill, h } from "../dom";
import { formatAgo, formatBytes, formatDate, formatDuration } from "../format";
import { ConsoleUploadProgressDocument, type ConsoleUploadFragment as Upload } from "../generated/graphql";
import type { ViewContext } from "../view";

/** A failure older than this is not news any more (its restore point card tells the rest). */
const FAILURE_SHOWN_MS = 7 * 86_400_000;

/**
 * A server's upload in words: while a backup of it is being sent, a live bar with the rate and
 * the time left; when the last one failed or stopped, why. Nothing once it completed.
 * While one runs, follows the source's uploads live until the page is left.
 */
export function uploadPanel(ctx: ViewContext, source: string, latest: Upload | undefined): HTMLElement {
  const panel = h("div", { class: "upload-panel", "data-source": source });
  let shown: Upload | undefined;
  const render = (u: Upload | undefined) => {
    shown = u;
    fill(panel, ...content(u));
  };
  render(latest);
  // Live only while a backup of it runs (a page with nothing uploading opens no socket); a backup
  // that starts later shows on the next visit to the page.
  if (latest?.status !== "ACTIVE") return panel;
  const stop = subscribe(ConsoleUploadProgressDocument, { sourceName: source }, {
    next: (d) => {
      if (!ctx.alive()) return;
      const u = d.uploadProgress;
      if (shown && u.id < shown.id) return;
      if (u.status === "COMPLETED" && shown?.id === u.id && shown.status === "ACTIVE") ctx.announce(`The backup of ${source} finished.`);
      if ((u.status === "FAILED" || u.status === "ABANDONED") && shown?.status === "ACTIVE") ctx.announce(`The backup of ${source} failed: ${u.failureReason ?? "no reason given"}`);
      render(u);
    },
    error: () => {},
    complete: () => {},
  });
  ctx.onCleanup(stop);
  return panel;
}

function content(u: Upload | undefined): HTMLElement[] {
  if (!u || u.status === "COMPLETED") return [];
  if (u.status === "ACTIVE") {
    const total = u.bytesTotal ?? 0;
    const pct = total > 0 ? Math.min(100, Math.floor((u.bytesDone / total) * 100)) : 0;
    const parts = [`${pct} % — ${formatBytes(u.bytesDone)} of ${formatBytes(total)}`];
    if (u.rate > 0) parts.push(`${formatBytes(u.rate)}/s`);
    if (u.etaSeconds !== null) parts.push(`about ${formatDuration(u.etaSeconds * 1000)} left`);
    return [
      h(
        "div",
        { class: "notice notice-info upload-active", "data-upload-id": u.id, "data-status": u.status },
        h("strong", null, "Backing up now"),
        h("progress", { class: "upload-bar", max: String(total || 1), value: String(Math.min(u.bytesDone, total)), "aria-label": `Backup of ${u.sourceName}: ${pct} %` }),
        h("p", { class: "upload-facts" }, parts.join(", ")),
        h("p", { class: "hint" }, `Started ${formatAgo(u.startedAt) || formatDate(u.startedAt)}; ${formatBytes(u.bytesSent)} sent so far.`),
      ),
    ];
  }
  if (u.completedAt && Date.now() - Date.parse(u.completedAt) > FAILURE_SHOWN_MS) return [];
  const what = u.status === "FAILED" ? "The last backup of this server failed" : "The last backup of this server stopped without finishing";
  return [
    h(
      "div",
      { class: "notice notice-error upload-failed", role: "alert", "data-upload-id": u.id, "data-status": u.status },
      h("strong", null, `⚠ ${what}`),
      h("p", { class: "upload-reason" }, u.failureReason ?? "No reason was given."),
      h("p", { class: "hint" }, `${formatDate(u.completedAt ?? u.startedAt)}. ${formatBytes(u.bytesSent)} had been sent. Fix the cause and run the backup again.`),
    ),
  ];
}
