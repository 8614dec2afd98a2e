import { gql } from "../api";
import { append, fill, h } from "../dom";
import { formatDate } from "../format";
import { ConsoleInstancesDocument, type ConsoleInstancesQuery } from "../generated/graphql";
import { errorBox, loading, type View } from "../view";
import { instancePanel } from "./instance-panel";

/** Recovered machines: the ones still there first, deleted ones after. */
export const instancesView: View = async (ctx) => {
  fill(ctx.main, ctx.heading("Machines"), h("p", { class: "lead" }, "The machines ReClo has recovered for you. Stop a machine to turn it off and keep its disk; delete it when you no longer need it."), loading("Loading machines…"));
  let data: ConsoleInstancesQuery;
  try {
    data = await gql(ConsoleInstancesDocument, { first: 100 });
  } catch (error) {
    if (!ctx.alive()) return;
    ctx.main.querySelector(".loading")?.remove();
    ctx.main.appendChild(errorBox(error, "Your machines could not be loaded."));
    return;
  }
  if (!ctx.alive()) return;
  ctx.main.querySelector(".loading")?.remove();
  const all = data.instances.edges.map((e) => e.node);
  const live = all.filter((i) => i.state !== "TERMINATED");
  const gone = all.filter((i) => i.state === "TERMINATED");
  if (all.length === 0) {
    ctx.main.appendChild(h("div", { class: "card empty" }, h("p", null, "There are no recovered machines. "), h("p", null, h("a", { href: "#/backups" }, "Choose a restore point to recover"))));
    return;
  }
  const item = (i: (typeof all)[number]) => {
    const panel = instancePanel(ctx, i, { headingLevel: "h3", title: i.recovery ? `${i.recovery.backup.sourceName} (from the restore point of ${formatDate(i.recovery.backup.createdAt)})` : i.name });
    if (i.recovery) panel.appendChild(h("p", { class: "hint" }, h("a", { href: `#/recoveries/${encodeURIComponent(i.recovery.id)}` }, "See how it was recovered")));
    return h("li", null, panel);
  };
  append(ctx.main, [
    h("section", { "aria-labelledby": "machines-live" }, h("h2", { id: "machines-live" }, `In use (${live.length})`), live.length ? h("ul", { class: "cards" }, live.map(item)) : h("p", null, "None.")),
    gone.length ? h("section", { "aria-labelledby": "machines-gone" }, h("details", null, h("summary", null, h("h2", { id: "machines-gone", class: "inline" }, `Deleted (${gone.length})`)), h("ul", { class: "cards" }, gone.map(item)))) : null,
  ]);
};
