import { ApiError, gql, onLiveStatus, subscribe } from "../api";
import { actionButton, confirmDialog, fill, h } from "../dom";
import { STEPS, formatBytes, formatDate, formatDuration, formatTime, isActive, kindLabel, stateIcon, stateLabel, targetLabel } from "../format";
import {
  ConsoleCancelRecoveryDocument,
  ConsoleRecoveryDocument,
  ConsoleRecoveryProgressDocument,
  type ConsoleRecoveryFieldsFragment as Recovery,
  type ConsoleRecoveryQuery,
  type RecoveryState,
} from "../generated/graphql";
import { errorBox, loading, type View } from "../view";
import { instancePanel } from "./instance-panel";

type Timeline = ConsoleRecoveryQuery["recovery"];
type RecoveryEvent = Timeline["events"][number];

const STEP_ORDER: RecoveryState[] = ["PENDING", "PREPARING", "IMPORTING", "LAUNCHING", "CHECKING", "COMPLETED"];

/**
 * One recovery, live: step list, a bar for the current step and one for the whole recovery, the
 * current activity, elapsed time, Cancel while it runs, the timeline, and the machine it made.
 * Progress comes from the recoveryProgress subscription (which sends the current state first, so
 * re-subscribing after a lost connection resumes; `version` skips what was already shown).
 */
export const recoveryView: View = async (ctx, params) => {
  const id = params.id ?? "";
  const h1 = ctx.heading("Recovery");
  fill(ctx.main, h("p", { class: "back" }, h("a", { href: "#/recoveries" }, "← All recoveries")), h1, loading("Loading the recovery…"));

  let data: Timeline;
  try {
    data = (await gql(ConsoleRecoveryDocument, { id })).recovery;
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    if (error instanceof ApiError && error.code === "NOT_FOUND") {
      h1.textContent = "Recovery not found";
      document.title = "Recovery not found · ReClo";
      ctx.main.append(
        h("p", { class: "notice notice-error", role: "alert" }, "This recovery was not found. The link may be wrong, or it belongs to another account."),
        h("p", null, h("a", { href: "#/recoveries" }, "See your recoveries"), " or ", h("a", { href: "#/backups" }, "choose a restore point to recover")),
      );
    } else {
      ctx.main.appendChild(errorBox(error, "The recovery could not be loaded."));
    }
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();

  // ---- elements that are updated in place (so screen readers and focus are not disturbed)
  const subtitle = h("p", { class: "lead" });
  const stateLine = h("p", { class: "state-line", id: "recovery-state" });
  const elapsed = h("span", { class: "elapsed" });
  const elapsedLabel = h("span", null, "Time so far: ");
  const steps = h("ol", { class: "steps", "aria-label": "Steps" });
  const stepLabel = h("label", { for: "step-progress" }, "Current step");
  const stepBar = h("progress", { id: "step-progress", max: "100", value: "0" });
  const stepPct = h("span", { class: "pct", "aria-hidden": "true" });
  const totalBar = h("progress", { id: "total-progress", max: "100", value: "0" });
  const totalPct = h("span", { class: "pct", "aria-hidden": "true" });
  const message = h("p", { class: "message", id: "recovery-message" });
  const failure = h("div", { class: "failure-area" });
  const actions = h("div", { class: "actions" });
  const machine = h("div", { class: "machine-area" });
  const bootCheck = h("section", { class: "card boot-check", "aria-labelledby": "boot-check-heading", hidden: "" });
  const timeline = h("ol", { class: "timeline" });
  const timelineStatus = h("p", { class: "hint", role: "status" });
  const technical = h("div", { class: "technical-area" });

  fill(
    ctx.main,
    h("p", { class: "back" }, h("a", { href: "#/recoveries" }, "← All recoveries")),
    h1,
    subtitle,
    h(
      "section",
      { class: "card progress-card", "aria-labelledby": "progress-heading" },
      h("h2", { id: "progress-heading", class: "visually-hidden" }, "Progress"),
      stateLine,
      steps,
      h("div", { class: "bar" }, h("div", { class: "bar-label" }, stepLabel, stepPct), stepBar),
      h("div", { class: "bar" }, h("div", { class: "bar-label" }, h("label", { for: "total-progress" }, "Overall progress"), totalPct), totalBar),
      message,
      h("p", { class: "hint" }, elapsedLabel, elapsed),
      failure,
      actions,
    ),
    bootCheck,
    machine,
    h("section", { class: "card", "aria-labelledby": "timeline-heading" }, h("h2", { id: "timeline-heading" }, "What happened so far"), timelineStatus, timeline, technical),
  );

  let current: Recovery = data;
  let lastState: RecoveryState | undefined;
  let furthestStep: RecoveryState = furthestFromEvents(data.events, data.state);
  const backup = data.backup;
  subtitle.textContent = `${backup.sourceName}, restore point of ${formatDate(backup.createdAt)} (${kindLabel(backup.kind).toLowerCase()}, ${formatBytes(backup.imageSize)}), onto the ${targetLabel(data.target).toLowerCase()}.`;

  const renderState = () => {
    const r = current;
    const active = isActive(r.state);
    const title = r.state === "COMPLETED" ? `${backup.sourceName} is back` : r.state === "FAILED" ? `Recovery of ${backup.sourceName} failed` : r.state === "CANCELLED" ? `Recovery of ${backup.sourceName} was cancelled` : `Recovering ${backup.sourceName}`;
    if (h1.textContent !== title) {
      h1.textContent = title;
      document.title = `${title} · ReClo`;
    }
    if (STEP_ORDER.indexOf(r.state) > STEP_ORDER.indexOf(furthestStep)) furthestStep = r.state;
    fill(stateLine, h("span", { class: `state-icon state-${r.state.toLowerCase()}`, "aria-hidden": "true" }, stateIcon(r.state)), " ", h("strong", null, stateLabel(r.state)));
    stateLine.dataset.state = r.state;

    // Steps with done / current / waiting marks in words, not only colour.
    const reached = STEP_ORDER.indexOf(furthestStep);
    fill(
      steps,
      STEPS.map((step, i) => {
        const index = STEP_ORDER.indexOf(step.state);
        let mark: "done" | "current" | "waiting" | "failed" | "stopped";
        if (r.state === "COMPLETED" || index < reached) mark = "done";
        else if (index === reached && active) mark = "current";
        else if (index === reached && r.state === "FAILED") mark = "failed";
        else if (index === reached && r.state === "CANCELLED") mark = "stopped";
        else mark = "waiting";
        if (step.state === "COMPLETED" && r.state === "COMPLETED") mark = "done";
        const icon = { done: "✓", current: "▶", waiting: "○", failed: "✗", stopped: "–" }[mark];
        const words = { done: "done", current: "in progress", waiting: "not started yet", failed: "failed here", stopped: "stopped here" }[mark];
        return h(
          "li",
          { class: `step step-${mark}`, "aria-current": mark === "current" ? "step" : null, "data-step": step.state },
          h("span", { class: "step-mark", "aria-hidden": "true" }, icon),
          h("span", { class: "step-text" }, h("span", { class: "step-title" }, `${i + 1}. ${step.title}`), h("span", { class: "step-words" }, ` (${words})`)),
        );
      }),
    );

    const stepName = STEPS.find((s) => s.state === r.state)?.title;
    stepLabel.textContent = active && stepName ? `Current step: ${stepName}` : "Current step";
    const stepValue = r.state === "COMPLETED" ? 100 : active ? r.stepProgress : stepBar.value;
    stepBar.value = stepValue;
    stepBar.textContent = `${stepValue} %`;
    stepPct.textContent = `${stepValue} %`;
    totalBar.value = r.totalProgress;
    totalBar.textContent = `${r.totalProgress} %`;
    totalPct.textContent = `${r.totalProgress} %`;
    const checkFailed = r.state === "COMPLETED" && r.bootCheck != null && r.bootCheck.status !== "VERIFIED";
    message.textContent =
      r.state === "COMPLETED"
        ? checkFailed
          ? "The machine was recovered, but it was not seen to start. See the check below: the machine is kept so you can look at it."
          : "Your recovered machine is running. See below for how to reach it."
        : (r.message ?? (r.state === "PENDING" ? "Waiting for a recovery worker to pick this up…" : ""));
    renderBootCheck(r);

    fill(
      failure,
      r.waitingForWorker && active
        ? h(
            "div",
            { class: "notice notice-warning", role: "status" },
            h("strong", null, "Waiting for a worker. "),
            `Nothing has worked on this recovery since ${new Date(r.waitingForWorker.since).toLocaleTimeString()} (${r.waitingForWorker.observed}). It goes on by itself when a worker is back; nothing is lost.`,
          )
        : r.state === "FAILED"
        ? h("div", { class: "notice notice-error" }, h("strong", null, "What went wrong: "), r.failureReason ?? "unknown", h("p", null, "Everything this recovery created has been removed. You can try again from the ", h("a", { href: "#/backups" }, "restore points"), ", or pick an older restore point."))
        : r.state === "CANCELLED"
          ? h("div", { class: "notice notice-info" }, "This recovery was cancelled and everything it created has been removed.")
          : null,
    );

    if (active && !actions.querySelector(".cancel")) {
      const cancel = actionButton(
        "Cancel recovery…",
        async () => {
          const ok = await confirmDialog({
            title: "Cancel this recovery?",
            body: [h("p", null, "ReClo will stop and remove everything this recovery has created so far. Your restore point is not affected; you can start again later.")],
            confirmLabel: "Cancel recovery",
            cancelLabel: "Keep going",
            danger: true,
          });
          if (!ok || !ctx.alive()) return;
          try {
            apply((await gql(ConsoleCancelRecoveryDocument, { id })).cancelRecovery);
          } catch (error) {
            if (ctx.alive()) fill(failure, errorBox(error, "The recovery could not be cancelled."));
          }
        },
        { busyText: "Cancelling…", variant: "danger" },
      );
      cancel.classList.add("cancel");
      actions.appendChild(cancel);
    } else if (!active) {
      fill(actions, r.state !== "COMPLETED" ? h("a", { class: "btn btn-secondary", href: "#/backups" }, "Back to restore points") : null);
    }

    if (r.state !== lastState) {
      if (lastState !== undefined) ctx.announce(announcement(r, backup.sourceName));
      lastState = r.state;
    }
  };

  let shot: { url: string | null; text: string | null } = { url: data.bootCheck?.screenshotUrl ?? null, text: data.bootCheck?.screenText ?? null };
  const renderBootCheck = (r: Recovery) => {
    const b = r.bootCheck;
    if (!b) {
      bootCheck.hidden = true;
      return;
    }
    bootCheck.hidden = false;
    bootCheck.dataset.status = b.status;
    const verdict =
      b.status === "VERIFIED"
        ? h("p", { class: "notice notice-good" }, h("strong", null, "It started. "), r.rtoSeconds != null ? `Measured recovery time (from pressing Recover to the first sign it was up): ${formatDuration(r.rtoSeconds * 1000)}.` : "")
        : b.status === "FAILED"
          ? h("p", { class: "notice notice-error", role: "alert" }, h("strong", null, "It did not start: "), b.reason ?? "a failure was seen", ". The machine is kept so you can look at it.")
          : b.status === "INCONCLUSIVE"
            ? h("p", { class: "notice notice-error", role: "alert" }, h("strong", null, "Nothing showed that it started: "), b.reason ?? "no evidence", ". The machine is kept so you can look at it.")
            : h("p", { class: "notice notice-info" }, "Looking at its screen and services…");
    const kindWords = { FIRMWARE: "Firmware", SCREEN: "Screen", SERVICE: "Service", MARKER: "Boot marker", MACHINE: "Machine" } as const;
    fill(
      bootCheck,
      h("h2", { id: "boot-check-heading" }, "Checking it started"),
      verdict,
      b.evidence.length
        ? h(
            "ul",
            { class: "boot-evidence" },
            b.evidence.map((e) =>
              h(
                "li",
                { class: `evidence-${e.ok ? "ok" : e.failure ? "failure" : "missing"}`, "data-kind": e.kind },
                h("span", { class: "evidence-mark", "aria-hidden": "true" }, e.ok ? "✓" : e.failure ? "✗" : "–"),
                " ",
                h("strong", null, `${kindWords[e.kind] ?? e.kind} (${e.ok ? "seen" : e.failure ? "failure" : "not seen"}): `),
                e.detail,
                " ",
                h("time", { datetime: e.at, class: "hint" }, formatTime(e.at)),
              ),
            ),
          )
        : null,
      shot.url
        ? h(
            "a",
            { class: "boot-shot", href: shot.url, target: "_blank", rel: "noopener noreferrer" },
            h("img", { src: shot.url, alt: `The screen of the recovered machine when it was checked${shot.text ? `: ${shot.text.slice(0, 200)}` : ""} (opens the full picture)`, width: "320", loading: "lazy" }),
          )
        : null,
    );
  };

  const tick = () => {
    const from = Date.parse(current.startedAt ?? current.createdAt);
    const to = current.completedAt ? Date.parse(current.completedAt) : isActive(current.state) ? Date.now() : from;
    elapsed.textContent = formatDuration(to - from);
    elapsedLabel.textContent = isActive(current.state) ? "Time so far: " : "Time taken: ";
  };

  const renderTimeline = (t: Timeline) => {
    fill(
      timeline,
      t.events.map((e) =>
        h(
          "li",
          { class: `event event-${e.status.toLowerCase()}` },
          h("time", { datetime: e.createdAt }, formatTime(e.createdAt)),
          " ",
          h("strong", null, STEPS.find((s) => s.state === e.step)?.title ?? stateLabel(e.step)),
          ": ",
          eventWords(e),
          // Routine entries speak for themselves; problems show the server's explanation.
          e.message && e.status !== "STARTED" && e.status !== "SUCCEEDED" ? h("span", { class: "event-message" }, ` — ${e.message}`) : null,
        ),
      ),
    );
    fill(
      technical,
      t.events.length
        ? h(
            "details",
            null,
            h("summary", null, "Technical details (for support)"),
            h(
              "ul",
              { class: "technical" },
              t.events.map((e) => h("li", null, `${e.createdAt} ${e.step} ${e.status}${e.attempt > 1 ? ` attempt ${e.attempt}` : ""}${e.message ? `: ${e.message}` : ""}`)),
            ),
          )
        : null,
    );
    timelineStatus.textContent = t.events.length ? "" : "Nothing has happened yet.";
    if (t.instance) {
      if (!machine.querySelector(".machine")) fill(machine, instancePanel(ctx, t.instance, { headingLevel: "h2", title: "Your recovered machine" }));
    }
  };

  let refreshing: Promise<void> | undefined;
  let refreshAgain = false;
  /** After a failed refresh: the next try's delay (doubling to 30 s), reset by a success. */
  let retryMs = 1000;
  const refreshTimeline = () => {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = (async () => {
      try {
        const fresh = (await gql(ConsoleRecoveryDocument, { id })).recovery;
        if (!ctx.alive()) return;
        furthestStep = furthestFromEvents(fresh.events, fresh.state, furthestStep);
        shot = { url: fresh.bootCheck?.screenshotUrl ?? null, text: fresh.bootCheck?.screenText ?? null };
        if (fresh.version > current.version) current = fresh;
        renderState();
        renderTimeline(fresh);
        retryMs = 1000;
      } catch {
        // Tried again (a dependency briefly unavailable, a dropped connection): once the recovery has
        // ended no step change would ever refresh it, and the timeline and the screenshot would stay behind.
        const delay = retryMs;
        retryMs = Math.min(retryMs * 2, 30_000);
        setTimeout(() => {
          if (ctx.alive()) refreshTimeline();
        }, delay);
      } finally {
        refreshing = undefined;
        if (refreshAgain && ctx.alive()) {
          refreshAgain = false;
          refreshTimeline();
        }
      }
    })();
  };

  const apply = (next: Recovery) => {
    if (next.version <= current.version) return; // already shown (e.g. the first event after re-subscribing)
    const stepChanged = next.state !== current.state;
    current = next;
    renderState();
    tick();
    if (stepChanged) refreshTimeline();
  };

  renderState();
  renderTimeline(data);
  tick();

  if (isActive(data.state)) {
    const timer = window.setInterval(tick, 1000);
    ctx.onCleanup(() => window.clearInterval(timer));
    let first = true;
    const stop = subscribe(ConsoleRecoveryProgressDocument, { recoveryId: id }, {
      next: (d) => {
        apply(d.recoveryProgress);
        // The timeline may have moved between loading the page and subscribing.
        if (first) refreshTimeline();
        first = false;
      },
      error: (error) => {
        if (!ctx.alive() || error.code === "UNAUTHENTICATED") return;
        fill(failure, errorBox(error, "Live updates stopped."), h("p", null, "Reload the page to see the latest state."));
      },
      complete: () => {
        window.clearInterval(timer);
        if (ctx.alive()) {
          tick();
          refreshTimeline();
        }
      },
    });
    ctx.onCleanup(stop);
    // Back after a lost connection: catch the timeline up (progress resumes by itself).
    ctx.onCleanup(
      onLiveStatus((status) => {
        if (status === "connected" && ctx.alive()) refreshTimeline();
      }),
    );
  }
};

function furthestFromEvents(events: RecoveryEvent[], state: RecoveryState, known: RecoveryState = "PENDING"): RecoveryState {
  let furthest = known;
  for (const s of [state, ...events.map((e) => e.step)]) {
    if (STEP_ORDER.indexOf(s) > STEP_ORDER.indexOf(furthest)) furthest = s;
  }
  return furthest;
}

function eventWords(e: RecoveryEvent): string {
  switch (e.status) {
    case "STARTED":
      return e.attempt > 1 ? `started again (attempt ${e.attempt})` : "started";
    case "SUCCEEDED":
      return "finished";
    case "RETRYING":
      return `hit a problem, trying again (attempt ${e.attempt})`;
    case "FAILED":
      return "failed";
    case "CANCELLED":
      return "cancelled";
    case "CLEANUP":
      return "cleaned up";
    case "OBSERVED":
      return "seen";
  }
}

function announcement(r: Recovery, source: string): string {
  const index = STEPS.findIndex((s) => s.state === r.state);
  if (r.state === "COMPLETED" && r.bootCheck && r.bootCheck.status !== "VERIFIED") return `Recovery finished, but ${source} was not seen to start: ${r.bootCheck.reason ?? "no evidence"}.`;
  if (r.state === "COMPLETED") return `Recovery finished. ${source} is running again.`;
  if (r.state === "FAILED") return `The recovery failed: ${r.failureReason ?? "unknown reason"}.`;
  if (r.state === "CANCELLED") return "The recovery was cancelled.";
  if (index >= 0) return `Step ${index + 1} of ${STEPS.length - 1}: ${STEPS[index]!.title}.`;
  return stateLabel(r.state);
}

