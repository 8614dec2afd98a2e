import { ApiError, gql } from "../api";
import { actionButton, fill, h, uid } from "../dom";
import { formatDate } from "../format";
import { ConsoleAgentKeysDocument, ConsoleCreateAgentKeyDocument, ConsoleRevokeAgentKeyDocument, type ConsoleAgentKeyFragment } from "../generated/graphql";
import { errorBox, loading, type View } from "../view";

/**
 * Agent keys (issue 18): what each server's backup agent signs in with. A key can only back up its
 * one source; made here (its secret shown once), listed with when and from where it was last used,
 * revoked at once.
 */
export const agentKeysView: View = async (ctx) => {
  fill(
    ctx.main,
    ctx.heading("Agent keys"),
    h(
      "p",
      { class: "lead" },
      "Each server's backup agent signs in with a key of its own. A key can only back up its one server: it cannot delete restore points, change retention, recover, or see your other servers, so a server taken over by ransomware cannot destroy your backups.",
    ),
    loading("Loading your agent keys…"),
  );
  let keys: ConsoleAgentKeyFragment[];
  try {
    keys = (await gql(ConsoleAgentKeysDocument)).agentKeys;
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your agent keys could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();

  const list = h("ul", { class: "cards agent-keys", "aria-label": "Your agent keys" });
  const empty = h("p", { class: "hint empty-agent-keys" }, "You have no agent keys yet.");
  const render = (k: ConsoleAgentKeyFragment): HTMLLIElement => {
    const titleId = uid("agent-key");
    const li = h(
      "li",
      { class: `card agent-key${k.revokedAt ? " agent-key-revoked" : ""}`, "data-agent-key-id": k.id, "aria-labelledby": titleId },
      h("h3", { id: titleId }, k.sourceName, k.revokedAt ? h("span", { class: "agent-key-status" }, " (revoked)") : null),
      k.note ? h("p", { class: "agent-key-note" }, k.note) : null,
      h(
        "p",
        { class: "hint agent-key-used" },
        `Created ${formatDate(k.createdAt)} · ${k.lastUsedAt ? `last used ${formatDate(k.lastUsedAt)}${k.lastUsedIp ? ` from ${k.lastUsedIp}` : ""}` : "never used"}${k.revokedAt ? ` · revoked ${formatDate(k.revokedAt)}` : ""}`,
      ),
    );
    if (!k.revokedAt) {
      const revoke = actionButton(
        "Revoke",
        async () => {
          try {
            const updated = (await gql(ConsoleRevokeAgentKeyDocument, { id: k.id })).revokeAgentKey;
            li.replaceWith(render(updated));
            ctx.announce(`The agent key of ${k.sourceName} is revoked.`);
          } catch (error) {
            li.appendChild(errorBox(error, "The key was not revoked:"));
          }
        },
        { variant: "danger", busyText: "Revoking…" },
      );
      revoke.classList.add("btn-small");
      li.appendChild(h("div", { class: "actions" }, revoke));
    }
    return li;
  };
  for (const k of keys) list.appendChild(render(k));

  const sourceId = uid("agent-key-source");
  const noteId = uid("agent-key-note");
  const source = h("input", { id: sourceId, name: "sourceName", required: true, maxlength: 128, autocomplete: "off", placeholder: "fileserver" });
  const note = h("input", { id: noteId, name: "note", maxlength: 255, autocomplete: "off" });
  const result = h("div", { role: "status" });
  const form = h(
    "form",
    { class: "form create-agent-key", novalidate: true },
    h("div", { class: "field" }, h("label", { for: sourceId }, "Server (source name)"), source),
    h("div", { class: "field" }, h("label", { for: noteId }, "Note (optional)"), note),
    h("button", { type: "submit", class: "btn btn-primary" }, "Create key"),
    result,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]") as HTMLButtonElement;
    submit.disabled = true;
    void (async () => {
      try {
        const created = (await gql(ConsoleCreateAgentKeyDocument, { input: { sourceName: source.value, note: note.value || null } })).createAgentKey;
        empty.remove();
        list.prepend(render(created.agentKey));
        source.value = "";
        note.value = "";
        fill(
          result,
          h(
            "div",
            { class: "notice notice-info new-agent-key" },
            h("p", {}, `The key for ${created.agentKey.sourceName}. Copy it now: it is not shown again.`),
            h("code", { class: "agent-key-secret" }, created.secret),
            h("p", { class: "hint" }, "On the server: reclo agent install --agent-key KEY …, or set RECLO_AGENT_KEY."),
          ),
        );
        ctx.announce("Agent key created. Copy it now: it is not shown again.");
      } catch (error) {
        fill(result, error instanceof ApiError ? errorBox(error, "The key was not created:") : errorBox(error));
      } finally {
        submit.disabled = false;
      }
    })();
  });
  ctx.main.append(
    h("section", { class: "card", "aria-labelledby": "agent-key-create-heading" }, h("h2", { id: "agent-key-create-heading" }, "Create a key"), form),
    h("section", { "aria-labelledby": "agent-keys-heading" }, h("h2", { id: "agent-keys-heading" }, "Your keys"), keys.length ? null : empty, list),
  );
};
