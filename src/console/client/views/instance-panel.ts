import { gql, subscribe } from "../api";
import { actionButton, confirmDialog, fill, h, uid } from "../dom";
import { formatDate, instanceStateLabel, stateIcon, targetLabel } from "../format";
import {
  ConsoleInstanceChangedDocument,
  ConsoleStartInstanceDocument,
  ConsoleStopInstanceDocument,
  ConsoleTerminateInstanceDocument,
  type ConsoleInstanceFieldsFragment as Instance,
} from "../generated/graphql";
import { errorBox, type ViewContext } from "../view";
import { accessPanel } from "./access-panel";

/**
 * One recovered machine: how to reach it, its state, and Start / Stop / Delete (terminate).
 * Re-renders itself after every action and on every instanceChanged event for it; `onChange`
 * hears about the new state.
 */
export function instancePanel(ctx: ViewContext, initial: Instance, opts: { headingLevel: "h2" | "h3"; title: string; onChange?: (i: Instance) => void }): HTMLElement {
  const headingId = uid("machine");
  const root = h("section", { class: "card machine", "aria-labelledby": headingId, "data-instance-id": initial.id });
  let instance = initial;

  const run = async (mutate: (id: string) => Promise<Instance>, verb: string) => {
    try {
      instance = await mutate(instance.id);
      if (!ctx.alive()) return;
      render();
      root.querySelector<HTMLElement>(".instance-state")?.focus();
      ctx.announce(`${instance.name} is now ${instanceStateLabel(instance.state).toLowerCase()}.`);
      opts.onChange?.(instance);
    } catch (error) {
      if (!ctx.alive()) return;
      render();
      root.appendChild(errorBox(error, `Could not ${verb} the machine.`));
    }
  };

  const render = () => {
    const s = instance.state;
    const stateId = uid("machine-state");
    const buttons: HTMLElement[] = [];
    if (s === "RUNNING" || s === "PENDING") buttons.push(actionButton("Stop machine", () => run(async (id) => (await gql(ConsoleStopInstanceDocument, { id })).stopInstance, "stop"), { busyText: "Stopping… (this can take a minute)" }));
    if (s === "STOPPED") buttons.push(actionButton("Start machine", () => run(async (id) => (await gql(ConsoleStartInstanceDocument, { id })).startInstance, "start"), { busyText: "Starting…", variant: "primary" }));
    if (s !== "TERMINATED") {
      buttons.push(
        actionButton(
          "Delete machine…",
          async () => {
            const ok = await confirmDialog({
              title: `Delete ${instance.name} for good?`,
              body: [
                h("p", null, "This shuts the machine down and deletes it and its disk (this is called “terminate”). Anything changed on it since it was recovered is lost."),
                h("p", null, "Your restore points are not affected: you can recover again from them at any time."),
              ],
              confirmLabel: "Delete machine",
              cancelLabel: "Keep it",
              danger: true,
            });
            if (ok && ctx.alive()) await run(async (id) => (await gql(ConsoleTerminateInstanceDocument, { id })).terminateInstance, "delete");
          },
          { busyText: "Deleting…", variant: "danger" },
        ),
      );
    }
    fill(
      root,
      h(opts.headingLevel, { id: headingId }, opts.title),
      h(
        "dl",
        { class: "facts" },
        h("div", null, h("dt", null, "Name"), h("dd", null, instance.name)),
        h("div", null, h("dt", null, "State"), h("dd", { id: stateId, tabindex: "-1", class: `instance-state state-${s.toLowerCase()}` }, h("span", { "aria-hidden": "true" }, `${stateIcon(s)} `), instanceStateLabel(s))),
        h(
          "div",
          null,
          h("dt", null, "How to reach it"),
          h(
            "dd",
            null,
            s === "TERMINATED"
              ? "It has been deleted."
              : instance.address
                ? [h("code", { class: "address" }, instance.address), h(
                    "span",
                    { class: "hint" },
                    instance.provider === "LOCAL"
                      ? " Connect with Remote Desktop (RDP) to this address, using the server's usual accounts: it leads to the machine's Remote Desktop port on this ReClo host."
                      : " Connect with Remote Desktop (port 3389) for Windows or SSH (port 22) for Linux, using the server's usual accounts.",
                  )]
                : "No address yet.",
            instance.privateAddress && s !== "TERMINATED" ? h("span", { class: "hint" }, ` Inside the network: ${instance.privateAddress}`) : null,
          ),
        ),
        h("div", null, h("dt", null, "Runs on"), h("dd", null, targetLabel(instance.provider))),
        instance.lastStoppedAt ? h("div", null, h("dt", null, "Last stopped"), h("dd", null, formatDate(instance.lastStoppedAt))) : null,
      ),
      buttons.length ? h("div", { class: "actions" }, buttons) : null,
      accessPanel(ctx, instance),
    );
  };
  render();

  // Changes made elsewhere (the CLI, another tab, the schedule that ends long-stopped machines)
  // show up here at once.
  const stopLive = subscribe(
    ConsoleInstanceChangedDocument,
    {},
    {
      next: ({ instanceChanged: changed }) => {
        if (changed.id !== instance.id || !ctx.alive()) return;
        if (changed.state === instance.state && changed.address === instance.address) return;
        instance = changed;
        render();
        ctx.announce(`${instance.name} is now ${instanceStateLabel(instance.state).toLowerCase()}.`);
        opts.onChange?.(instance);
      },
      error: () => {},
      complete: () => {},
    },
  );
  ctx.onCleanup(stopLive);
  return root;
}
