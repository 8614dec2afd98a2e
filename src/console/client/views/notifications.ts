import { ApiError, gql, subscribe } from "../api";
import { actionButton, append, confirmDialog, fill, h, uid } from "../dom";
import { formatAgo, formatDate } from "../format";
import {
  ConsoleAddWebhookDocument,
  ConsoleMarkAllNotificationsReadDocument,
  ConsoleMarkNotificationsReadDocument,
  ConsoleNotificationAddedDocument,
  ConsoleNotificationSettingsDocument,
  ConsoleNotificationsDocument,
  ConsoleRemoveWebhookDocument,
  ConsoleSendTestWebhookDocument,
  ConsoleSetNotificationPreferencesDocument,
  type ConsoleDeliveryFieldsFragment,
  type ConsoleNotificationFieldsFragment,
  type ConsoleNotificationSettingsQuery,
  type NotificationKind,
} from "../generated/graphql";
import { errorBox, loading, type View, type ViewContext } from "../view";

/** Every kind, in the order people read them, with its words. */
const KINDS: { kind: NotificationKind; label: string }[] = [
  { kind: "BACKUP_MISSED", label: "A scheduled backup did not happen" },
  { kind: "UPLOAD_FAILED", label: "A backup upload failed" },
  { kind: "UPLOAD_ABANDONED", label: "A backup upload was abandoned" },
  { kind: "VERIFICATION_FAILED", label: "A restore point failed its boot check" },
  { kind: "RECOVERY_FAILED", label: "A recovery failed" },
  { kind: "RECOVERY_COMPLETED", label: "A recovery completed" },
  { kind: "INSTANCE_TERMINATING", label: "A stopped machine will soon be deleted" },
  { kind: "DELETION_REQUESTED", label: "A restore point or retention shortening went to the trash" },
];
const kindLabel = (k: NotificationKind) => KINDS.find((x) => x.kind === k)?.label ?? k;
const BAD: NotificationKind[] = ["BACKUP_MISSED", "UPLOAD_FAILED", "UPLOAD_ABANDONED", "VERIFICATION_FAILED", "RECOVERY_FAILED", "INSTANCE_TERMINATING", "DELETION_REQUESTED"];

/** The notifications, newest first, unread ones marked; new ones appear live (notificationAdded). */
export const notificationsView: View = async (ctx, params) => {
  const count = h("p", { class: "unread-count", role: "status" });
  const list = h("ul", { class: "cards notifications" });
  fill(
    ctx.main,
    ctx.heading("Notifications"),
    h("p", { class: "lead" }, "What ReClo noticed and you should know: missed backups, failed checks and recoveries, machines about to be deleted. ", h("a", { href: "#/settings/notifications" }, "Choose what is e-mailed, and add webhooks")),
    count,
    loading("Loading notifications…"),
  );
  let unread = 0;
  const showCount = () => fill(count, unread === 0 ? "No unread notifications." : `${unread} unread`);
  const markAll = actionButton(
    "Mark all as read",
    async () => {
      try {
        unread = (await gql(ConsoleMarkAllNotificationsReadDocument)).markAllNotificationsRead;
        for (const li of list.querySelectorAll(".notification-unread")) li.classList.remove("notification-unread");
        for (const tag of list.querySelectorAll(".unread-tag")) tag.remove();
        showCount();
        ctx.announce("All notifications marked as read.");
      } catch (error) {
        ctx.main.appendChild(errorBox(error, "Could not mark them as read."));
      }
    },
    { variant: "secondary" },
  );
  const item = (n: ConsoleNotificationFieldsFragment) => {
    const titleId = uid("notification");
    const li = h(
      "li",
      { class: `card notification${n.readAt ? "" : " notification-unread"}`, "aria-labelledby": titleId, "data-notification-id": n.id, id: `notification-${n.id}` },
      h("h2", { id: titleId, class: BAD.includes(n.kind) ? "tone-bad" : "tone-good" }, n.readAt ? null : h("span", { class: "badge unread-tag" }, "New"), " ", n.title),
      h("p", { class: "hint" }, `${kindLabel(n.kind)} · ${formatDate(n.createdAt)}${formatAgo(n.createdAt) ? ` (${formatAgo(n.createdAt)})` : ""}`),
      h("p", { class: "notification-body" }, n.body),
    );
    if (!n.readAt) {
      const read = actionButton(
        "Mark as read",
        async () => {
          try {
            unread = (await gql(ConsoleMarkNotificationsReadDocument, { ids: [n.id] })).markNotificationsRead;
            li.classList.remove("notification-unread");
            li.querySelector(".unread-tag")?.remove();
            read.remove();
            showCount();
          } catch (error) {
            li.appendChild(errorBox(error, "Could not mark it as read."));
          }
        },
        { variant: "secondary" },
      );
      read.classList.add("btn-small");
      li.appendChild(h("div", { class: "actions" }, read));
    }
    return li;
  };
  let data;
  try {
    data = await gql(ConsoleNotificationsDocument, { first: 100 });
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your notifications could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();
  unread = data.unreadNotificationCount;
  showCount();
  const empty = h("div", { class: "card empty" }, h("p", null, "Nothing to report yet. When ReClo notices something you should know, it appears here."));
  const seen = new Set<string>();
  for (const e of data.notifications.edges) {
    seen.add(e.node.id);
    list.appendChild(item(e.node));
  }
  append(ctx.main, [h("div", { class: "actions" }, markAll), data.notifications.edges.length ? null : empty, list]);
  if (params.id) document.getElementById(`notification-${params.id}`)?.scrollIntoView({ block: "center" });
  const stop = subscribe(ConsoleNotificationAddedDocument, {}, {
    next: ({ notificationAdded: n }) => {
      if (seen.has(n.id)) return;
      seen.add(n.id);
      empty.remove();
      list.prepend(item(n));
      if (!n.readAt) unread += 1;
      showCount();
      ctx.announce(`New notification: ${n.title}`);
    },
    error: () => {},
    complete: () => {},
  });
  ctx.onCleanup(stop);
};

function deliveryLine(d: ConsoleDeliveryFieldsFragment): HTMLLIElement {
  const ok = d.status === "DELIVERED";
  const words = d.status === "DELIVERED" ? "Delivered" : d.status === "FAILED" ? "Failed, will retry" : "Refused, not retried";
  return h(
    "li",
    { class: ok ? "tone-good" : "tone-bad" },
    `${formatDate(d.at)}: ${words}${d.httpStatus !== null ? ` (HTTP ${d.httpStatus})` : ""}${d.test ? ", test event" : ""}, attempt ${d.attempt}, ${d.durationMs} ms`,
    d.error && !ok ? h("span", { class: "hint block" }, d.error) : null,
  );
}

/** E-mail preferences and webhooks: add (the secret shown once), test, deliveries log, remove. */
export const notificationSettingsView: View = async (ctx) => {
  fill(ctx.main, ctx.heading("Notification settings"), h("p", { class: "back" }, h("a", { href: "#/notifications" }, "← Notifications")), loading("Loading settings…"));
  let data: ConsoleNotificationSettingsQuery;
  try {
    data = await gql(ConsoleNotificationSettingsDocument);
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your settings could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();
  append(ctx.main, [emailSection(ctx, data.notificationPreferences.emailKinds), webhookSection(ctx, data.webhooks)]);
};

function kindCheckboxes(name: string, checked: NotificationKind[]): { fieldset: HTMLFieldSetElement; chosen(): NotificationKind[] } {
  const boxes = KINDS.map(({ kind, label }) => {
    const id = uid(name);
    const input = h("input", { type: "checkbox", id, name, value: kind, checked: checked.includes(kind) });
    return { kind, input, row: h("div", { class: "checkbox" }, input, h("label", { for: id }, label)) };
  });
  return { fieldset: h("fieldset", { class: "kinds" }, boxes.map((b) => b.row)), chosen: () => boxes.filter((b) => b.input.checked).map((b) => b.kind) };
}

function emailSection(ctx: ViewContext, emailKinds: NotificationKind[]): HTMLElement {
  const status = h("p", { role: "status", class: "hint" });
  const kinds = kindCheckboxes("email-kind", emailKinds);
  kinds.fieldset.prepend(h("legend", null, "E-mail me when"));
  const save = actionButton(
    "Save e-mail choices",
    async () => {
      try {
        const r = await gql(ConsoleSetNotificationPreferencesDocument, { input: { emailKinds: kinds.chosen() } });
        fill(status, r.setNotificationPreferences.emailKinds.length ? "Saved." : "Saved: you will not be e-mailed.");
        ctx.announce("E-mail choices saved.");
      } catch (error) {
        fill(status, errorBox(error, "Not saved."));
      }
    },
    { variant: "primary" },
  );
  return h("section", { class: "card", "aria-labelledby": "email-prefs" }, h("h2", { id: "email-prefs" }, "E-mail"), kinds.fieldset, h("div", { class: "actions" }, save), status);
}

function webhookSection(ctx: ViewContext, hooks: ConsoleNotificationSettingsQuery["webhooks"]): HTMLElement {
  const list = h("ul", { class: "cards webhooks" });
  const render = (w: ConsoleNotificationSettingsQuery["webhooks"][number]) => {
    const titleId = uid("webhook");
    const log = h("ul", { class: "deliveries" }, w.deliveries.map(deliveryLine));
    const li: HTMLLIElement = h(
      "li",
      { class: "card webhook", "aria-labelledby": titleId, "data-webhook-id": w.id },
      h("h3", { id: titleId, class: "url" }, w.url),
      h("p", { class: "hint" }, `Receives: ${w.events.length === KINDS.length ? "everything" : w.events.map(kindLabel).join("; ")}`),
      h("h4", null, "Latest deliveries"),
      w.deliveries.length ? null : h("p", { class: "hint no-deliveries" }, "None yet."),
      log,
    );
    const test = actionButton(
      "Send a test event",
      async () => {
        try {
          const d = (await gql(ConsoleSendTestWebhookDocument, { id: w.id })).sendTestWebhook;
          li.querySelector(".no-deliveries")?.remove();
          log.prepend(deliveryLine(d));
          ctx.announce(d.status === "DELIVERED" ? "The test event was delivered." : "The test event was not delivered.");
        } catch (error) {
          li.appendChild(errorBox(error, "The test event could not be sent."));
        }
      },
      { variant: "secondary", busyText: "Sending…" },
    );
    const remove = actionButton(
      "Remove",
      async () => {
        const ok = await confirmDialog({ title: "Remove this webhook?", body: [h("p", null, `${w.url} will no longer receive notifications, and its delivery log is deleted.`)], confirmLabel: "Remove", cancelLabel: "Keep it", danger: true });
        if (!ok) return;
        try {
          await gql(ConsoleRemoveWebhookDocument, { id: w.id });
          li.remove();
          ctx.announce("Webhook removed.");
        } catch (error) {
          li.appendChild(errorBox(error, "The webhook could not be removed."));
        }
      },
      { variant: "danger" },
    );
    li.appendChild(h("div", { class: "actions" }, test, remove));
    return li;
  };
  for (const w of hooks) list.appendChild(render(w));

  const urlId = uid("webhook-url");
  const url = h("input", { id: urlId, type: "url", name: "url", required: true, placeholder: "https://example.com/reclo-hook", autocomplete: "off" });
  const kinds = kindCheckboxes("webhook-kind", KINDS.map((k) => k.kind));
  kinds.fieldset.prepend(h("legend", null, "Send"));
  const result = h("div", { role: "status" });
  const form = h("form", { class: "form add-webhook", novalidate: true }, h("div", { class: "field" }, h("label", { for: urlId }, "Webhook URL"), url), kinds.fieldset, h("button", { type: "submit", class: "btn btn-primary" }, "Add webhook"), result);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]") as HTMLButtonElement;
    submit.disabled = true;
    void (async () => {
      try {
        const w = (await gql(ConsoleAddWebhookDocument, { input: { url: url.value, events: kinds.chosen() } })).addWebhook;
        fill(
          result,
          h(
            "div",
            { class: "notice notice-warning secret" },
            h("strong", null, "Copy the signing secret now: it is shown only this once."),
            h("p", null, h("code", { class: "signing-secret" }, w.signingSecret ?? "")),
            h("p", null, "Your receiver checks X-ReClo-Signature: sha256=<hex HMAC-SHA256 of “<X-ReClo-Timestamp>.<raw body>”, keyed with this secret>."),
          ),
        );
        list.prepend(render({ id: w.id, url: w.url, events: kinds.chosen(), createdAt: new Date().toISOString(), deliveries: [] }));
        url.value = "";
        ctx.announce("Webhook added. Copy its signing secret now.");
      } catch (error) {
        fill(result, error instanceof ApiError ? errorBox(error, "The webhook was not added:") : errorBox(error));
      } finally {
        submit.disabled = false;
      }
    })();
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "webhooks-heading" },
    h("h2", { id: "webhooks-heading" }, "Webhooks"),
    h("p", { class: "hint" }, "A webhook receives each notification as a signed JSON POST. Failed deliveries are retried for a while; a 4xx answer is not retried."),
    form,
    list,
  );
}
