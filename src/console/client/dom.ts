/** Tiny DOM helpers: elements are built with textContent only (never innerHTML), so server data cannot inject markup. */

export type Child = Node | string | number | null | undefined | false | Child[];
type AttrValue = string | number | boolean | null | undefined;
export type Attrs = { [name: string]: AttrValue | ((event: Event) => void) };

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (typeof value === "function") {
        el.addEventListener(name.replace(/^on/, "").toLowerCase(), value);
      } else if (value === true) {
        el.setAttribute(name, "");
      } else if (value !== false && value !== null && value !== undefined) {
        el.setAttribute(name, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
}

/** Replaces all children of `el`. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let idCounter = 0;
export function uid(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Text for screen readers only. */
export function srOnly(text: string): HTMLSpanElement {
  return h("span", { class: "visually-hidden" }, text);
}

/** A button that shows `busyText` and is disabled while `action` runs. */
export function actionButton(label: string, action: () => Promise<void>, opts: { busyText?: string; variant?: "primary" | "secondary" | "danger"; describedBy?: string; disabled?: boolean } = {}): HTMLButtonElement {
  const button = h("button", { type: "button", class: `btn btn-${opts.variant ?? "secondary"}`, "aria-describedby": opts.describedBy, disabled: opts.disabled }, label);
  button.addEventListener("click", () => {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    if (opts.busyText) button.textContent = opts.busyText;
    action().finally(() => {
      button.removeAttribute("aria-busy");
      if (button.isConnected) {
        button.disabled = false;
        button.textContent = label;
      }
    });
  });
  return button;
}

/**
 * A modal confirmation (native <dialog>: focus is trapped inside, Escape cancels). Resolves true
 * when the person confirms. Focus goes back to where it was.
 */
export function confirmDialog(opts: { title: string; body: Child[]; confirmLabel: string; cancelLabel: string; danger?: boolean }): Promise<boolean> {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const titleId = uid("dialog-title");
  const confirm = h("button", { type: "button", class: `btn ${opts.danger ? "btn-danger" : "btn-primary"}` }, opts.confirmLabel);
  const cancel = h("button", { type: "button", class: "btn btn-secondary" }, opts.cancelLabel);
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId }, h("h2", { id: titleId }, opts.title), h("div", { class: "dialog-body" }, opts.body), h("div", { class: "actions" }, confirm, cancel));
  document.body.appendChild(dialog);
  return new Promise<boolean>((resolve) => {
    let result = false;
    confirm.addEventListener("click", () => {
      result = true;
      dialog.close();
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener?.isConnected) opener.focus();
      resolve(result);
    });
    dialog.showModal();
    // Destructive actions start on the safe choice.
    (opts.danger ? cancel : confirm).focus();
  });
}
