import { gql } from "../api";
import { confirmDialog, fill, h, uid } from "../dom";
import { formatAgo, formatBytes, formatDate, kindLabel, stateLabel, targetLabel } from "../format";
import {
  ConsoleDeleteBackupDocument,
  ConsoleReauthenticateDocument,
  ConsoleRecoveriesDocument,
  ConsoleRecoveryTargetsDocument,
  ConsoleResolveSuspectBackupDocument,
  ConsoleRestorePointsDocument,
  ConsoleStartRecoveryDocument,
  ConsoleUploadsDocument,
  type ConsoleUploadFragment,
  type ConsoleRecoveryTargetsQuery,
  type ConsoleRestorePointFragment as RestorePoint,
  type ConsoleRestorePointsQuery,
  type RecoveryTarget,
} from "../generated/graphql";
import { errorBox, loading, type View, type ViewContext } from "../view";
import { drillsPanel } from "./drills-panel";
import { uploadPanel } from "./upload-panel";
import { evidenceWords, verdictWords } from "../../../client/verdict-words";
import { restorePointAlarms, type AlarmMark } from "../../../client/alarm-marks";

/** Restore points, grouped by the machine they came from, newest first. */
export const backupsView: View = async (ctx) => {
  const status = h("div", { class: "page-status" });
  fill(
    ctx.main,
    ctx.heading("Restore points"),
    h("p", { class: "lead" }, "Each restore point is a saved copy of one of your servers. To bring a server back, choose a restore point and press “Recover”. ReClo then starts a new machine from it."),
    status,
    loading("Loading your restore points…"),
  );
  let data: ConsoleRestorePointsQuery;
  // Recoveries still running are shown first, so nobody starts a second one by mistake.
  const running = gql(ConsoleRecoveriesDocument, { first: 100, filter: { active: true } }).then(
    (r) => r.recoveries.edges.map((e) => e.node),
    () => [],
  );
  // Each server's latest upload: a live bar while it runs, the reason if it failed.
  const latestUploads = gql(ConsoleUploadsDocument, { first: 100 }).then(
    (r) => {
      const bySource = new Map<string, ConsoleUploadFragment>();
      for (const e of r.uploads.edges) if (!bySource.has(e.node.sourceName)) bySource.set(e.node.sourceName, e.node);
      return bySource;
    },
    () => new Map<string, ConsoleUploadFragment>(),
  );
  try {
    data = await gql(ConsoleRestorePointsDocument, { first: 100 });
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your restore points could not be loaded."));
    return;
  }
  const active = await running;
  const uploadsBySource = await latestUploads;
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();
  if (active.length) {
    status.appendChild(
      h(
        "div",
        { class: "notice notice-info" },
        h("strong", null, active.length === 1 ? "A recovery is running:" : `${active.length} recoveries are running:`),
        h(
          "ul",
          null,
          active.map((r) =>
            h("li", null, `${r.backup.sourceName}: ${stateLabel(r.state).toLowerCase()}, ${r.totalProgress} % done. `, h("a", { href: `#/recoveries/${encodeURIComponent(r.id)}` }, `Watch the recovery of ${r.backup.sourceName}`)),
          ),
        ),
      ),
    );
  }

  const points = data.backups.edges.map((e) => e.node);
  if (points.length === 0) {
    ctx.main.appendChild(
      h("div", { class: "card empty" }, h("p", null, "There are no restore points yet."), h("p", null, "Once the ReClo agent has backed up a server, its restore points appear here.")),
    );
    return;
  }
  const groups = new Map<string, RestorePoint[]>();
  for (const p of [...points].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))) {
    const list = groups.get(p.sourceName) ?? [];
    list.push(p);
    groups.set(p.sourceName, list);
  }
  for (const [source, list] of groups) {
    const headingId = uid("source");
    const alarms = restorePointAlarms(list);
    ctx.main.appendChild(
      h(
        "section",
        { class: "source", "aria-labelledby": headingId },
        h("h2", { id: headingId }, h("span", { class: "source-label" }, "Server "), source),
        uploadPanel(ctx, source, uploadsBySource.get(source)),
        drillsPanel(source),
        h(
          "ul",
          { class: "cards" },
          list.map((p, i) => restorePointCard(ctx, p, i === 0 && p.restorable, status, alarms.get(p.id))),
        ),
      ),
    );
  }
};

const VERDICT_ICON = { good: "✓", bad: "✗", unknown: "?", running: "…" } as const;

/** The verdict in words ("Verified" only with positive evidence: see verdictWords). */
function verificationText(p: RestorePoint): { icon: string; text: string; tone: string; when?: string | null } {
  const v = p.verification;
  if (!v) return { icon: "○", text: "Not verified yet", tone: "neutral" };
  const words = verdictWords(v);
  return { icon: VERDICT_ICON[words.tone], text: words.text, tone: words.tone === "good" || words.tone === "bad" ? words.tone : "neutral", when: words.tone === "running" ? null : v.checkedAt };
}

/** What the check saw, one item each: seen / failure / not seen, in words. */
function evidenceList(p: RestorePoint): HTMLElement | null {
  const ev = p.verification?.evidence ?? [];
  if (!ev.length) return null;
  return h(
    "details",
    { class: "evidence" },
    h("summary", null, `What the check saw (${ev.length})`),
    h(
      "ul",
      null,
      ev.map((e) => {
        const w = evidenceWords(e);
        const state = e.failure ? "Failure" : e.ok ? "Seen" : "Not seen";
        // Only evidence that can prove a start is shown as good; the firmware handing over proves nothing yet.
        return h("li", { class: e.failure ? "tone-bad" : e.ok && e.kind !== "FIRMWARE" && e.kind !== "MACHINE" ? "tone-good" : "" }, h("span", { "aria-hidden": "true" }, `${w.mark} `), h("span", { class: "visually-hidden" }, `${state}: `), w.text);
      }),
    ),
  );
}

function whyNotRestorable(p: RestorePoint): string | undefined {
  if (p.restorable) return undefined;
  switch (p.status) {
    case "UPLOADING":
      return "Can't recover yet: this backup is still being uploaded.";
    case "ABORTED":
      return "Can't recover: this backup was never finished. Choose another restore point.";
    case "DELETED":
      return "Can't recover: this restore point has been deleted.";
    default:
      return "Can't recover: part of this backup's data is missing. Choose another restore point.";
  }
}

function statusText(p: RestorePoint): string {
  switch (p.status) {
    case "COMPLETED":
      return "Complete";
    case "UPLOADING":
      return "Still uploading";
    case "ABORTED":
      return "Not finished";
    case "DELETED":
      return "Deleted";
  }
}

/** The encryption alarm on a card: what was seen, and the owner's two answers. */
function alarmNotice(ctx: ViewContext, p: RestorePoint, mark: AlarmMark | undefined): HTMLElement | null {
  const s = p.suspect;
  if (!s || s.verdict === "SAFE") return null;
  if (s.verdict === "ENCRYPTED")
    return h("div", { class: "notice notice-error", role: "note" }, h("strong", null, "You marked this restore point as encrypted."), h("p", null, "Recover from the restore point marked “Last clean”. Retention keeps it until you delete it."));
  const answer = async (verdict: "SAFE" | "ENCRYPTED", button: HTMLButtonElement, password?: string) => {
    button.disabled = true;
    try {
      // SAFE lifts retention's hold on the clean restore points: the server wants the password re-entered.
      if (password !== undefined) await gql(ConsoleReauthenticateDocument, { password });
      await gql(ConsoleResolveSuspectBackupDocument, { id: p.id, verdict });
      if (ctx.alive()) ctx.navigate("#/backups");
    } catch (error) {
      button.disabled = false;
      if (ctx.alive()) notice.appendChild(errorBox(error, "Your answer could not be saved."));
    }
  };
  const safe = h("button", { type: "button", class: "btn" }, "It was a legitimate change");
  const encrypted = h("button", { type: "button", class: "btn btn-danger" }, "It is encrypted");
  const passwordId = uid("alarm-password");
  const password = h("input", { id: passwordId, name: "password", type: "password", autocomplete: "current-password", required: true });
  const confirmSafe = h("button", { type: "submit", class: "btn" }, "Confirm: legitimate change");
  const safeForm = h(
    "form",
    { class: "form", method: "post", action: "#", hidden: true },
    h("p", null, "This lets retention delete the older clean restore points again. Enter your password to confirm."),
    h("div", { class: "field" }, h("label", { for: passwordId }, "Your password"), password),
    h("div", { class: "actions" }, confirmSafe),
  );
  safe.addEventListener("click", () => {
    safeForm.hidden = false;
    password.focus();
  });
  safeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!confirmSafe.disabled && password.value) void answer("SAFE", confirmSafe, password.value);
  });
  encrypted.addEventListener("click", () => void answer("ENCRYPTED", encrypted));
  const notice = h(
    "div",
    { class: "notice notice-error alarm", role: "alert" },
    h("strong", null, mark === "SUSPECT" ? "Possible ransomware encryption" : "Suspected encryption"),
    h(
      "p",
      null,
      `${s.changedPercent} % of the disk changed in this backup (usually ${s.usualPercent === null ? "unknown" : `${s.usualPercent} %`}), into data that looks encrypted (${s.entropy.toFixed(2)} bits per byte). ` +
        "Check the server now. Unless you answer that it was a legitimate change, the older clean restore points are kept whatever the retention policy says.",
    ),
    h("div", { class: "actions" }, safe, encrypted),
    safeForm,
  );
  return notice;
}

function restorePointCard(ctx: ViewContext, p: RestorePoint, latest: boolean, status: HTMLElement, alarm?: AlarmMark): HTMLLIElement {
  const titleId = uid("rp");
  const whyId = uid("why");
  const verification = verificationText(p);
  const why = whyNotRestorable(p);
  const recover = h("button", { type: "button", class: "btn btn-primary", disabled: !p.restorable, "aria-describedby": why ? whyId : null }, "Recover…");
  recover.addEventListener("click", () => void startRecovery(ctx, p, recover, status));
  const ago = formatAgo(p.createdAt);
  const trashNote = h("div", { class: "trash-note" });
  let remove: HTMLButtonElement | null = null;
  if (p.deleteAfter) fill(trashNote, inTrashNotice(p.deleteAfter));
  else if (p.status !== "DELETED") {
    remove = h("button", { type: "button", class: "btn btn-danger btn-small" }, "Delete…");
    remove.addEventListener("click", () => void deleteRestorePoint(ctx, p, remove!, trashNote, status));
  }
  return h(
    "li",
    { class: "card restore-point", "aria-labelledby": titleId, "data-backup-id": p.id },
    h(
      "h3",
      { id: titleId },
      formatDate(p.createdAt),
      ago ? h("span", { class: "muted" }, ` (${ago})`) : null,
      latest ? h("span", { class: "badge" }, "Latest") : null,
      alarm === "SUSPECT" ? h("span", { class: "badge badge-danger", "data-alarm": "suspect" }, "⚠ Suspect: possible ransomware") : null,
      alarm === "ENCRYPTED" ? h("span", { class: "badge badge-danger", "data-alarm": "encrypted" }, "Encrypted") : null,
      alarm === "LAST_CLEAN" ? h("span", { class: "badge badge-good", "data-alarm": "last-clean" }, "Last clean") : null,
    ),
    alarmNotice(ctx, p, alarm),
    h(
      "dl",
      { class: "facts" },
      h("div", null, h("dt", null, "Type"), h("dd", null, kindLabel(p.kind))),
      h("div", null, h("dt", null, "Disk size"), h("dd", null, formatBytes(p.imageSize))),
      h("div", null, h("dt", null, "Backup"), h("dd", null, statusText(p))),
      h("div", null, h("dt", null, "Start-up check"), h(
          "dd",
          null,
          h("span", { class: `verification tone-${verification.tone}` }, h("span", { "aria-hidden": "true" }, `${verification.icon} `), verification.text),
          verification.when ? h("span", { class: "hint block" }, `Checked ${formatAgo(verification.when) || formatDate(verification.when)}`) : null,
          p.verification?.screenshotUrl
            ? h(
                "a",
                { class: "boot-shot", href: p.verification.screenshotUrl, target: "_blank", rel: "noopener noreferrer" },
                h("img", { src: p.verification.screenshotUrl, alt: `The screen of ${p.sourceName} during the start-up check (opens the full picture)`, width: "200", loading: "lazy" }),
              )
            : null,
        ),
      ),
    ),
    evidenceList(p),
    trashNote,
    h("div", { class: "actions" }, recover, remove, why ? h("p", { id: whyId, class: "hint" }, why) : null),
  );
}

/** On a card in the trash: until when it stays, and where to undo it. */
function inTrashNotice(deleteAfter: string): HTMLElement {
  return h("p", { class: "notice notice-warning" }, `In the trash: it will be deleted on ${formatDate(deleteAfter)}. Until then you can still recover from it, or `, h("a", { href: "#/trash" }, "restore it from the Trash"), ".");
}

/**
 * Delete (issue 18): asks first; the API may want the password again (the dialog of reauth.ts,
 * through gql). A finished restore point goes to the trash for DELETION_DELAY.
 */
async function deleteRestorePoint(ctx: ViewContext, p: RestorePoint, button: HTMLButtonElement, note: HTMLElement, status: HTMLElement): Promise<void> {
  const ok = await confirmDialog({
    title: `Delete the restore point of ${p.sourceName}?`,
    body: [
      h("p", null, `The restore point of ${formatDate(p.createdAt)} goes to the trash: it is deleted after 72 hours, and until then you can undo this on the Trash page. You will be e-mailed about it.`),
    ],
    confirmLabel: "Delete",
    cancelLabel: "Keep it",
    danger: true,
  });
  if (!ok || !ctx.alive()) return;
  button.disabled = true;
  fill(status);
  try {
    const b = (await gql(ConsoleDeleteBackupDocument, { id: p.id })).deleteBackup;
    if (!ctx.alive()) return;
    button.remove();
    if (b.deleteAfter) {
      fill(note, inTrashNotice(b.deleteAfter));
      fill(
        status,
        h(
          "div",
          { class: "notice notice-info deleted-to-trash", role: "status" },
          `The restore point of ${b.sourceName} went to the trash. It will be deleted on ${formatDate(b.deleteAfter)}; until then you can undo this on the `,
          h("a", { href: "#/trash" }, "Trash page"),
          ".",
        ),
      );
      ctx.announce(`The restore point of ${b.sourceName} went to the trash. It will be deleted on ${formatDate(b.deleteAfter)}.`);
    } else {
      button.closest("li")?.remove();
      fill(status, h("div", { class: "notice notice-info", role: "status" }, `The unfinished backup of ${b.sourceName} was deleted.`));
    }
  } catch (error) {
    if (!ctx.alive()) return;
    button.disabled = false;
    fill(status, errorBox(error, `The restore point of ${p.sourceName} was not deleted.`));
  }
}

const TARGET_HINT: Record<RecoveryTarget, string> = {
  LOCAL: "A machine in your office or data centre that runs recovered servers.",
  AWS: "A new server in your AWS account, reachable over the internet from your address.",
};

async function startRecovery(ctx: ViewContext, p: RestorePoint, button: HTMLButtonElement, status: HTMLElement): Promise<void> {
  // Only the places this server can actually use are offered; with one, there is nothing to choose.
  let targets: ConsoleRecoveryTargetsQuery["recoveryTargets"];
  try {
    targets = (await gql(ConsoleRecoveryTargetsDocument)).recoveryTargets;
  } catch (error) {
    if (ctx.alive()) fill(status, errorBox(error, `The recovery of ${p.sourceName} could not start.`));
    return;
  }
  if (!ctx.alive()) return;
  const name = uid("target");
  const option = (value: RecoveryTarget) => {
    const id = uid("target-opt");
    return h(
      "div",
      { class: "radio" },
      h("input", { type: "radio", name, id, value, checked: value === targets.default }),
      h("label", { for: id }, h("strong", null, value === targets.default ? `${targetLabel(value)} (usual)` : targetLabel(value)), h("span", { class: "hint" }, TARGET_HINT[value])),
    );
  };
  const fieldset =
    targets.available.length > 1
      ? h("fieldset", null, h("legend", null, "Where should the machine run?"), targets.available.map(option))
      : h("p", null, `The machine will run on ${targets.default === "LOCAL" ? "the local recovery host" : "Amazon's cloud (AWS)"}.`);
  const ok = await confirmDialog({
    title: `Recover ${p.sourceName}?`,
    body: [
      h("p", null, `ReClo will start a new machine from the restore point of ${formatDate(p.createdAt)}. The restore point itself stays unchanged.`),
      p.suspect && p.suspect.verdict !== "SAFE"
        ? h("p", { class: "notice notice-error" }, "Warning: this restore point is suspected of holding a ransomware-encrypted disk. Recover from the restore point marked “Last clean” unless you are sure.")
        : null,
      fieldset,
    ],
    confirmLabel: "Start recovery",
    cancelLabel: "Don't recover",
  });
  if (!ok || !ctx.alive()) return;
  const target = (fieldset.querySelector<HTMLInputElement>("input:checked")?.value ?? targets.default) as RecoveryTarget;
  button.disabled = true;
  button.textContent = "Starting…";
  fill(status);
  try {
    const { startRecovery } = await gql(ConsoleStartRecoveryDocument, { input: { backupId: p.id, target } });
    ctx.navigate(`#/recoveries/${startRecovery.id}`);
  } catch (error) {
    if (!ctx.alive()) return;
    button.disabled = false;
    button.textContent = "Recover…";
    fill(status, errorBox(error, `The recovery of ${p.sourceName} could not start.`));
  }
}
