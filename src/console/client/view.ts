import { h } from "./dom";
import { ApiError } from "./api";
import { CONSOLE_MESSAGES, consoleMessage } from "../../client/errors";

/** What a view gets from the router. */
export interface ViewContext {
  main: HTMLElement;
  /** False once the person has navigated away: stop rendering. */
  alive(): boolean;
  /** Runs when the view is left (subscriptions, timers). */
  onCleanup(fn: () => void): void;
  /** Says `text` through the page's polite live region. */
  announce(text: string): void;
  /** document.title, plus the visible <h1> that receives focus. */
  heading(text: string): HTMLHeadingElement;
  navigate(hash: string): void;
}

export type View = (ctx: ViewContext, params: Record<string, string>) => void | Promise<void>;

export function loading(text = "Loading…"): HTMLParagraphElement {
  return h("p", { class: "loading", role: "status" }, text);
}

/** An error box that screen readers announce at once. */
export function errorBox(error: unknown, prefix?: string): HTMLDivElement {
  const message = error instanceof ApiError ? friendlyMessage(error) : CONSOLE_MESSAGES.consoleFault;
  return h("div", { class: "notice notice-error", role: "alert" }, h("strong", null, "⚠ "), prefix ? `${prefix} ` : "", message);
}

/** The words for an API failure (src/client/errors.ts holds them for the console and the CLI). */
export function friendlyMessage(error: ApiError): string {
  return consoleMessage(error);
}
