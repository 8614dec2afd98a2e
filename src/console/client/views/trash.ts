import { gql } from "../api";
import { actionButton, fill, h, uid } from "../dom";
import { formatDate } from "../format";
import { ConsoleRestoreFromTrashDocument, ConsoleTrashDocument, type ConsoleTrashQuery } from "../generated/graphql";
import { errorBox, loading, type View } from "../view";

type TrashItem = ConsoleTrashQuery["trash"][number];

/** Words for the kinds the console knows; any other kind is shown as the server names it. */
const KIND_WORDS: Record<string, string> = {
  BACKUP: "Restore point",
  RETENTION_POLICY: "Retention shortening",
  SOURCE: "Server",
  AGENT_KEYS: "Agent keys",
};
export const trashKindLabel = (kind: string): string => KIND_WORDS[kind] ?? kind;

/**
 * The trash (issue 18): deletions and retention shortenings (and any other kind the server puts
 * there) that wait DELETION_DELAY before they happen, soonest first, each with Restore.
 */
export const trashView: View = async (ctx) => {
  fill(
    ctx.main,
    ctx.heading("Trash"),
    h(
      "p",
      { class: "lead" },
      "What you deleted waits here before it really happens, so a mistake or an attacker with your session cannot destroy your backups at once. You were e-mailed about each one. Press “Restore” to undo it; a restore point in the trash can still be recovered from.",
    ),
    loading("Loading the trash…"),
  );
  let items: TrashItem[];
  try {
    items = (await gql(ConsoleTrashDocument)).trash;
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "The trash could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();

  const status = h("div", { class: "page-status", role: "status" });
  const empty = h("p", { class: "card empty empty-trash" }, "The trash is empty.");
  const list = h("ul", { class: "cards trash", "aria-label": "In the trash" });
  for (const item of items) {
    const titleId = uid("trash");
    const li = h(
      "li",
      { class: "card trash-item", "data-trash-id": item.id, "data-kind": item.kind, "aria-labelledby": titleId },
      h("h3", { id: titleId }, h("span", { class: "trash-kind" }, trashKindLabel(item.kind)), ": ", h("span", { class: "trash-what" }, item.what)),
      h(
        "dl",
        { class: "facts" },
        h("div", null, h("dt", null, "Takes effect"), h("dd", { class: "trash-effective" }, formatDate(item.effectiveAt))),
        h("div", null, h("dt", null, "Asked for"), h("dd", null, formatDate(item.requestedAt))),
        h("div", null, h("dt", null, "By"), h("dd", null, item.requestedBy ?? "unknown")),
      ),
    );
    const restore = actionButton(
      "Restore",
      async () => {
        try {
          const done = (await gql(ConsoleRestoreFromTrashDocument, { id: item.id })).restoreFromTrash;
          li.remove();
          if (!list.children.length) list.replaceWith(empty);
          const text = `Restored: ${done.what}. It will not be deleted or changed.`;
          fill(status, h("div", { class: "notice notice-info trash-restored" }, text));
          ctx.announce(text);
        } catch (error) {
          li.appendChild(errorBox(error, "It was not restored:"));
        }
      },
      { variant: "primary", busyText: "Restoring…" },
    );
    restore.setAttribute("aria-label", `Restore ${trashKindLabel(item.kind).toLowerCase()}: ${item.what}`);
    li.appendChild(h("div", { class: "actions" }, restore));
    list.appendChild(li);
  }
  ctx.main.append(status, items.length ? list : empty);
};
