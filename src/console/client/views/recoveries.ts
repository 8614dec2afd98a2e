import { gql } from "../api";
import { fill, h } from "../dom";
import { formatDate, isActive, stateIcon, stateLabel } from "../format";
import { ConsoleRecoveriesDocument, type ConsoleRecoveriesQuery } from "../generated/graphql";
import { errorBox, loading, type View } from "../view";

export const recoveriesView: View = async (ctx) => {
  fill(ctx.main, ctx.heading("Recoveries"), h("p", { class: "lead" }, "Every time a restore point was recovered into a new machine, newest first."), loading("Loading recoveries…"));
  let data: ConsoleRecoveriesQuery;
  try {
    data = await gql(ConsoleRecoveriesDocument, { first: 50 });
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your recoveries could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();
  const list = data.recoveries.edges.map((e) => e.node);
  if (list.length === 0) {
    ctx.main.appendChild(h("div", { class: "card empty" }, h("p", null, "Nothing has been recovered yet. "), h("p", null, h("a", { href: "#/backups" }, "Choose a restore point to recover"))));
    return;
  }
  ctx.main.appendChild(
    h(
      "ul",
      { class: "cards" },
      list.map((r) =>
        h(
          "li",
          { class: "card recovery-item", "data-recovery-id": r.id },
          h("h2", { class: "h3" }, h("a", { href: `#/recoveries/${encodeURIComponent(r.id)}` }, `${r.backup.sourceName}, restore point of ${formatDate(r.backup.createdAt)}`)),
          h(
            "dl",
            { class: "facts" },
            h("div", null, h("dt", null, "Started"), h("dd", null, formatDate(r.startedAt ?? r.createdAt))),
            h(
              "div",
              null,
              h("dt", null, "State"),
              h("dd", { class: `state-${r.state.toLowerCase()}` }, h("span", { "aria-hidden": "true" }, `${stateIcon(r.state)} `), stateLabel(r.state), isActive(r.state) ? ` (${r.totalProgress} %)` : null),
            ),
            r.instance ? h("div", null, h("dt", null, "Machine"), h("dd", null, `${r.instance.name}${r.instance.address && r.instance.state !== "TERMINATED" ? ` at ${r.instance.address}` : ""}`)) : null,
          ),
        ),
      ),
    ),
  );
};
