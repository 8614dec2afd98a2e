import { ApiError, gql } from "../api";
import { actionButton, fill, h, uid } from "../dom";
import { formatDate } from "../format";
import {
  ConsoleAuditLogDocument,
  ConsoleGrantSupportAccessDocument,
  ConsoleRevokeSupportAccessDocument,
  ConsoleSupportGrantsDocument,
  type ConsoleAuditLogQuery,
  type ConsoleSupportGrantFragment,
  type GrantScope,
} from "../generated/graphql";
import { errorBox, loading, type View } from "../view";

const STATUS_WORDS = { LIVE: "Active", EXPIRED: "Expired", REVOKED: "Revoked" } as const;
const SCOPE_WORDS: Record<GrantScope, string> = { READ: "Look only", READ_AND_RETRY: "Look, retry and cancel recoveries" };
const DURATIONS: { minutes: number; label: string }[] = [
  { minutes: 30, label: "30 minutes" },
  { minutes: 60, label: "1 hour" },
  { minutes: 240, label: "4 hours" },
  { minutes: 1440, label: "1 day" },
  { minutes: 10080, label: "7 days" },
];

/** Support access (issue 17): grant ReClo support a look at the account for a while, see grants, revoke them. */
export const supportAccessView: View = async (ctx) => {
  fill(
    ctx.main,
    ctx.heading("Support access"),
    h(
      "p",
      { class: "lead" },
      "Let ReClo support look at your account for a while, for example to find out why a recovery failed. Without your grant support sees only your e-mail address and account status. Everything support looks at is listed on your ",
      h("a", { href: "#/activity" }, "Activity"),
      " page.",
    ),
    loading("Loading your grants…"),
  );
  let grants: ConsoleSupportGrantFragment[];
  try {
    grants = (await gql(ConsoleSupportGrantsDocument)).supportGrants.edges.map((e) => e.node);
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your support grants could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();

  const list = h("ul", { class: "cards support-grants", "aria-label": "Your support grants" });
  const empty = h("p", { class: "hint empty-grants" }, "You have not granted support access yet.");
  const render = (g: ConsoleSupportGrantFragment): HTMLLIElement => {
    const titleId = uid("grant");
    const li = h(
      "li",
      { class: `card support-grant grant-${g.status.toLowerCase()}`, "data-grant-id": g.id, "aria-labelledby": titleId },
      h("h3", { id: titleId, class: g.status === "LIVE" ? "tone-good" : "" }, h("span", { class: "grant-status" }, STATUS_WORDS[g.status]), ": ", SCOPE_WORDS[g.scope]),
      h(
        "p",
        { class: "hint" },
        `Granted ${formatDate(g.createdAt)} · ${g.status === "REVOKED" ? `revoked ${formatDate(g.revokedAt)}` : `${g.status === "LIVE" ? "until" : "ended"} ${formatDate(g.expiresAt)}`}`,
      ),
      g.note ? h("p", { class: "grant-note" }, g.note) : null,
    );
    if (g.status === "LIVE") {
      const revoke = actionButton(
        "Revoke",
        async () => {
          try {
            const updated = (await gql(ConsoleRevokeSupportAccessDocument, { id: g.id })).revokeSupportAccess;
            li.replaceWith(render(updated));
            ctx.announce("Support access revoked.");
          } catch (error) {
            li.appendChild(errorBox(error, "The grant was not revoked:"));
          }
        },
        { variant: "danger", busyText: "Revoking…" },
      );
      revoke.classList.add("btn-small");
      li.appendChild(h("div", { class: "actions" }, revoke));
    }
    return li;
  };
  for (const g of grants) list.appendChild(render(g));

  const durationId = uid("grant-minutes");
  const scopeId = uid("grant-scope");
  const noteId = uid("grant-note");
  const duration = h("select", { id: durationId, name: "minutes" }, ...DURATIONS.map((d) => h("option", { value: String(d.minutes), selected: d.minutes === 60 }, d.label)));
  const scope = h(
    "select",
    { id: scopeId, name: "scope" },
    h("option", { value: "READ", selected: true }, SCOPE_WORDS.READ),
    h("option", { value: "READ_AND_RETRY" }, SCOPE_WORDS.READ_AND_RETRY),
  );
  const note = h("textarea", { id: noteId, name: "note", maxlength: 500, rows: 3, placeholder: "What should support look at? (e.g. the recovery of fileserver fails)" });
  const result = h("div", { role: "status" });
  const form = h(
    "form",
    { class: "form grant-support", novalidate: true },
    h("div", { class: "field" }, h("label", { for: durationId }, "For how long"), duration),
    h("div", { class: "field" }, h("label", { for: scopeId }, "Support may"), scope),
    h("div", { class: "field" }, h("label", { for: noteId }, "Note for support (optional)"), note),
    h("button", { type: "submit", class: "btn btn-primary" }, "Grant access"),
    result,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]") as HTMLButtonElement;
    submit.disabled = true;
    void (async () => {
      try {
        const g = (await gql(ConsoleGrantSupportAccessDocument, { input: { minutes: Number(duration.value), scope: scope.value as GrantScope, note: note.value } })).grantSupportAccess;
        empty.remove();
        list.prepend(render(g));
        note.value = "";
        fill(result, h("p", { class: "notice notice-info" }, `Support access granted until ${formatDate(g.expiresAt)}.`));
        ctx.announce("Support access granted.");
      } catch (error) {
        fill(result, error instanceof ApiError ? errorBox(error, "Access was not granted:") : errorBox(error));
      } finally {
        submit.disabled = false;
      }
    })();
  });
  ctx.main.append(
    h("section", { class: "card", "aria-labelledby": "grant-heading" }, h("h2", { id: "grant-heading" }, "Grant access"), form),
    h("section", { "aria-labelledby": "grants-heading" }, h("h2", { id: "grants-heading" }, "Your grants"), grants.length ? null : empty, list),
  );
};

type AuditNode = ConsoleAuditLogQuery["auditLog"]["edges"][number]["node"];

const ACTION_WORDS: Record<string, string> = {
  "auth.login": "Logged in",
  "auth.login_failed": "Failed login (wrong password)",
  "auth.logout": "Logged out",
  "auth.logout_everywhere": "Logged out everywhere",
  "auth.session_revoked": "Session revoked",
  "auth.password_changed": "Password changed",
  "auth.email_verified": "E-mail address verified",
  "grant.create": "Support access granted",
  "grant.revoke": "Support access revoked",
  "backup.delete": "Restore point deleted",
  "instance.terminate": "Machine terminated",
  "access_key.revoke": "Access key revoked",
  "agent_key.create": "Agent key created",
  "agent_key.revoke": "Agent key revoked",
  "webhook.remove": "Webhook removed",
  "admin.set_role": "Role changed by an administrator",
  "admin.create_user": "Account created by an administrator",
};
const actionWords = (a: string) => ACTION_WORDS[a] ?? (a.startsWith("support.") ? `Support: ${a.slice("support.".length)}` : a);

/** The account's audit log, newest first (issue 17): logins, grants, what support looked at, destructive actions. */
export const activityView: View = async (ctx) => {
  fill(
    ctx.main,
    ctx.heading("Activity"),
    h("p", { class: "lead" }, "Everything recorded about your account, newest first: logins, password changes, support access and everything support looked at, deletions."),
    loading("Loading activity…"),
  );
  const body = h("tbody");
  const table = h(
    "table",
    { class: "table activity-log" },
    h("caption", { class: "visually-hidden" }, "Your account's activity, newest first"),
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "What"), h("th", { scope: "col" }, "Who"), h("th", { scope: "col" }, "Details"), h("th", { scope: "col" }, "From"))),
    body,
  );
  const row = (e: AuditNode) =>
    h(
      "tr",
      { "data-action": e.action, "data-event-id": e.id },
      h("td", null, formatDate(e.at)),
      h("td", null, actionWords(e.action)),
      h("td", null, e.actor ? `${e.actor.username}${e.actor.role === "CUSTOMER" ? "" : ` (${e.actor.role === "SUPPORT" ? "ReClo support" : "ReClo admin"})`}` : "—"),
      h("td", null, e.target ?? ""),
      h("td", null, e.ip ?? ""),
    );
  const more = h("div", { class: "actions" });
  const load = async (after: string | null) => {
    const { auditLog } = await gql(ConsoleAuditLogDocument, { after });
    for (const e of auditLog.edges) body.appendChild(row(e.node));
    more.replaceChildren();
    if (auditLog.pageInfo.hasNextPage)
      more.appendChild(
        actionButton(
          "Show older",
          async () => {
            try {
              await load(auditLog.pageInfo.endCursor);
            } catch (error) {
              more.appendChild(errorBox(error, "Older activity could not be loaded."));
            }
          },
          { variant: "secondary" },
        ),
      );
    return auditLog.edges.length;
  };
  let n: number;
  try {
    n = await load(null);
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your activity could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();
  ctx.main.append(n ? table : h("p", { class: "hint" }, "Nothing recorded yet."), more);
};
