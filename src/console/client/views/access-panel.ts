import { gql } from "../api";
import { actionButton, fill, h, uid } from "../dom";
import { formatDate } from "../format";
import {
  ConsoleAccessKeysDocument,
  ConsoleCreateAccessKeyDocument,
  ConsoleRevokeAccessKeyDocument,
  type ConsoleAccessKeyFieldsFragment as AccessKey,
  type ConsoleInstanceFieldsFragment as Instance,
} from "../generated/graphql";
import { errorBox, type ViewContext } from "../view";

const SVG_NS = "http://www.w3.org/2000/svg";
const SVG_ELEMENTS = new Set(["svg", "path", "rect"]);
const SVG_ATTRIBUTES = new Set(["xmlns", "width", "height", "viewBox", "d", "fill", "stroke", "shape-rendering", "x", "y"]);

/**
 * The QR code the API drew, rebuilt element by element from an allow-list (svg, path, rect and their
 * geometry): no markup from a response reaches the page as markup (the console never uses innerHTML).
 */
function qrCode(svgText: string, label: string): Element | null {
  const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml").documentElement;
  if (parsed.namespaceURI !== SVG_NS || parsed.localName !== "svg") return null;
  const copy = (from: Element): Element | null => {
    if (from.namespaceURI !== SVG_NS || !SVG_ELEMENTS.has(from.localName)) return null;
    const to = document.createElementNS(SVG_NS, from.localName);
    for (const a of Array.from(from.attributes)) if (SVG_ATTRIBUTES.has(a.name) && !/url\(|javascript:/i.test(a.value)) to.setAttribute(a.name, a.value);
    for (const child of Array.from(from.children)) {
      const c = copy(child);
      if (c) to.appendChild(c);
    }
    return to;
  };
  const svg = copy(parsed);
  svg?.setAttribute("role", "img");
  svg?.setAttribute("aria-label", label);
  svg?.setAttribute("class", "qr");
  return svg;
}

/** A file the browser downloads (a Blob URL on a link with `download`; nothing leaves the page). */
function downloadLink(text: string, fileName: string, label: string): HTMLAnchorElement {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  return h("a", { class: "btn btn-primary", href: url, download: fileName }, label);
}

const keyStatus = (k: AccessKey) =>
  k.revokedAt ? `revoked ${formatDate(k.revokedAt)}` : Date.parse(k.expiresAt) <= Date.now() ? `expired ${formatDate(k.expiresAt)}` : `works until ${formatDate(k.expiresAt)}`;

/**
 * "Connect privately": a RUNNING machine's WireGuard access. Creates a key for this device (the
 * configuration to download and a QR code for the WireGuard app, shown once), and lists and revokes
 * the machine's keys.
 */
export function accessPanel(ctx: ViewContext, instance: Instance): HTMLElement | null {
  const access = instance.privateAccess;
  if (!access || instance.state !== "RUNNING") return null;
  const headingId = uid("connect");
  const inputId = uid("device");
  const root = h("section", { class: "connect", "aria-labelledby": headingId });
  const created = h("div", { class: "created-key" });
  const list = h("div", { class: "access-keys" });

  const renderKeys = (keys: AccessKey[]) =>
    fill(
      list,
      h("h4", null, `Devices with a key (${keys.filter((k) => !k.revokedAt).length} active)`),
      keys.length
        ? h(
            "ul",
            { class: "keys" },
            keys.map((k) =>
              h(
                "li",
                { "data-key-id": k.id },
                h("strong", null, k.deviceName),
                ` ${k.address} — ${keyStatus(k)}${k.lastHandshakeAt ? `; last connected ${formatDate(k.lastHandshakeAt)}` : ""} `,
                k.revokedAt ? null : actionButton(`Revoke ${k.deviceName}`, () => revoke(k), { busyText: "Revoking…", variant: "danger" }),
              ),
            ),
          )
        : h("p", { class: "hint" }, "No device has a key yet."),
    );

  const loadKeys = async () => {
    try {
      const { instance: i } = await gql(ConsoleAccessKeysDocument, { id: instance.id });
      if (ctx.alive()) renderKeys(i.accessKeys);
    } catch (error) {
      if (ctx.alive()) fill(list, errorBox(error, "The keys could not be loaded."));
    }
  };

  const revoke = async (k: AccessKey) => {
    try {
      await gql(ConsoleRevokeAccessKeyDocument, { id: k.id });
      ctx.announce(`The key of ${k.deviceName} is revoked: that device can no longer connect.`);
    } catch (error) {
      if (ctx.alive()) list.appendChild(errorBox(error, "Could not revoke the key."));
      return;
    }
    await loadKeys();
  };

  const create = async () => {
    const input = root.querySelector<HTMLInputElement>(`#${inputId}`)!;
    try {
      const { createAccessKey: k } = await gql(ConsoleCreateAccessKeyDocument, { input: { instanceId: instance.id, deviceName: input.value } });
      if (!ctx.alive()) return;
      const conf = k.wireguardConfig ?? "";
      const fileName = `reclo-${instance.name}-${k.deviceName}`.replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 60) + ".conf";
      fill(
        created,
        h("p", { class: "notice", role: "status" }, `Key for “${k.deviceName}” created: this device is ${k.address} in the tunnel. Save the configuration now — it is shown only this once.`),
        h("div", { class: "actions" }, downloadLink(conf, fileName, "Download .conf")),
        k.qrCodeSvg ? qrCode(k.qrCodeSvg, `QR code of the WireGuard configuration for ${k.deviceName}`) : null,
        h("details", null, h("summary", null, "Show the configuration"), h("pre", { class: "wg-conf" }, conf)),
      );
      ctx.announce(`Key for ${k.deviceName} created. Download the configuration or scan the QR code now.`);
      input.value = "";
    } catch (error) {
      if (ctx.alive()) fill(created, errorBox(error, "Could not create the key."));
      return;
    }
    await loadKeys();
  };

  fill(
    root,
    h("h4", { id: headingId }, "Connect privately"),
    h(
      "p",
      { class: "hint" },
      `Over WireGuard to ${access.endpoint}, then to the machine at `,
      h("code", null, access.tunnelAddress),
      ` on port${access.ports.length > 1 ? "s" : ""} ${access.ports.join(", ")}. Each device gets its own key.`,
    ),
    h(
      "div",
      { class: "actions" },
      h("label", { for: inputId }, "Device name "),
      h("input", { id: inputId, type: "text", maxlength: 64, value: "This computer", autocomplete: "off" }),
      actionButton("Create key for this device", create, { busyText: "Creating…", variant: "primary" }),
    ),
    created,
    list,
  );
  void loadKeys();
  return root;
}
