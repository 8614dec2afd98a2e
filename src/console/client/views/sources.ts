import { gql } from "../api";
import { fill, h, uid } from "../dom";
import { formatAgo, formatDate } from "../format";
import { ConsoleSetBackupScheduleDocument, ConsoleSourcesDocument, type ConsoleSourceFragment as Source, type Weekday } from "../generated/graphql";
import { errorBox, loading, type View, type ViewContext } from "../view";

const DAYS: { value: Weekday; label: string }[] = [
  { value: "SUNDAY", label: "Sunday" },
  { value: "MONDAY", label: "Monday" },
  { value: "TUESDAY", label: "Tuesday" },
  { value: "WEDNESDAY", label: "Wednesday" },
  { value: "THURSDAY", label: "Thursday" },
  { value: "FRIDAY", label: "Friday" },
  { value: "SATURDAY", label: "Saturday" },
];
const dayLabel = (d: Weekday) => DAYS.find((x) => x.value === d)?.label ?? d;
const kindWords = (k: Source["nextBackup"]["kind"]) => (k === "FULL" ? "full copy" : "changes only");

/** Your servers: when each is backed up (the schedule its agent follows), the next and last backup, when its agent was last seen; a form to change the schedule. */
export const sourcesView: View = async (ctx) => {
  fill(
    ctx.main,
    ctx.heading("Servers"),
    h("p", { class: "lead" }, "Each server is backed up once a day at its time, a full copy once a week. Its agent follows the schedule you set here; no restart is needed."),
    loading("Loading your servers…"),
  );
  let list: Source[];
  try {
    list = (await gql(ConsoleSourcesDocument, { first: 100 })).sources.edges.map((e) => e.node);
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your servers could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();
  if (!list.length) {
    ctx.main.appendChild(h("div", { class: "card empty" }, h("p", null, "No servers yet."), h("p", { class: "hint" }, "A server appears here with its first backup (reclo backup, or reclo agent on the server).")));
    return;
  }
  ctx.main.appendChild(h("ul", { class: "cards" }, list.map((s) => sourceCard(ctx, s))));
};

function sourceCard(ctx: ViewContext, initial: Source): HTMLLIElement {
  const card = h("li", { class: "card source-card", "data-source": initial.name });
  const render = (s: Source) => {
    const headingId = uid("source");
    const sc = s.schedule;
    const last = s.lastBackup;
    fill(
      card,
      h("h2", { id: headingId }, s.name),
      s.missedSince
        ? h("p", { class: "notice notice-warning missed", role: "status" }, h("strong", null, "⚠ Backups are missed: "), `no backup has started since ${formatDate(s.missedSince)}.`)
        : null,
      h(
        "dl",
        { class: "facts", "aria-labelledby": headingId },
        h("div", null, h("dt", null, "Schedule"), h("dd", { class: "schedule" }, `Every day at ${sc.incrementalAt} (${sc.timezone}); full copy on ${dayLabel(sc.fullEvery)}s`)),
        h("div", null, h("dt", null, "Next backup"), h("dd", { class: "next-backup" }, `${formatDate(s.nextBackup.at)}, ${kindWords(s.nextBackup.kind)}`)),
        h("div", null, h("dt", null, "Last backup"), h("dd", { class: "last-backup" }, last ? `${formatDate(last.createdAt)}, ${kindWords(last.kind)} (${last.status.toLowerCase()})` : "None yet")),
        h(
          "div",
          null,
          h("dt", null, "Agent last seen"),
          h("dd", { class: "last-seen" }, s.lastSeenAt ? `${formatAgo(s.lastSeenAt) || formatDate(s.lastSeenAt)}${s.agentHost ? ` on ${s.agentHost}` : ""}` : "Never: no agent runs for this server"),
        ),
      ),
      scheduleForm(ctx, s, (updated) => {
        render(updated);
        ctx.announce(`The schedule of ${updated.name} is saved. Next backup: ${formatDate(updated.nextBackup.at)}.`);
        card.querySelector<HTMLElement>(".saved")?.focus();
      }),
    );
  };
  render(initial);
  return card;
}

function scheduleForm(ctx: ViewContext, s: Source, onSaved: (s: Source) => void): HTMLElement {
  const id = uid("schedule");
  const day = h("select", { id: `${id}-day`, name: "fullEvery" }, DAYS.map((d) => h("option", { value: d.value, selected: d.value === s.schedule.fullEvery }, d.label)));
  const time = h("input", { id: `${id}-time`, name: "incrementalAt", type: "time", required: true, value: s.schedule.incrementalAt });
  const tz = h("input", { id: `${id}-tz`, name: "timezone", type: "text", required: true, spellcheck: "false", autocomplete: "off", value: s.schedule.timezone, "aria-describedby": `${id}-tz-hint` });
  const grace = h("input", { id: `${id}-grace`, name: "graceMinutes", type: "number", min: 1, max: 1440, required: true, value: s.schedule.graceMinutes });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Save schedule");
  const result = h("div", { class: "form-result" });
  const form = h(
    "form",
    { class: "form schedule-form", "aria-label": `Schedule of ${s.name}`, novalidate: true },
    h("div", { class: "field" }, h("label", { for: `${id}-time` }, "Daily backup at"), time),
    h("div", { class: "field" }, h("label", { for: `${id}-day` }, "Full copy on"), day),
    h(
      "div",
      { class: "field" },
      h("label", { for: `${id}-tz` }, "Time zone"),
      tz,
      h("p", { id: `${id}-tz-hint`, class: "hint" }, `A name like Europe/Berlin or UTC. Yours: ${Intl.DateTimeFormat().resolvedOptions().timeZone}.`),
    ),
    h("div", { class: "field" }, h("label", { for: `${id}-grace` }, "Warn me when a backup is this many minutes late"), grace),
    result,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    submit.disabled = true;
    submit.textContent = "Saving…";
    result.replaceChildren();
    gql(ConsoleSetBackupScheduleDocument, {
      input: { sourceName: s.name, fullEvery: day.value, incrementalAt: time.value, timezone: tz.value.trim(), graceMinutes: Number(grace.value) },
    }).then(
      ({ setBackupSchedule }) => {
        if (!ctx.alive()) return;
        onSaved(setBackupSchedule);
      },
      (error: unknown) => {
        if (!ctx.alive()) return;
        submit.disabled = false;
        submit.textContent = "Save schedule";
        result.replaceChildren(errorBox(error, "The schedule was not saved."));
      },
    );
  });
  return h("details", { class: "schedule-details" }, h("summary", { class: "saved", tabindex: "-1" }, "Change the schedule"), form);
}
