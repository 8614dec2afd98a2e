import { h } from "./dom";
import { ApiError } from "./api";

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
  const message = error instanceof ApiError ? friendlyMessage(error) : "Something went wrong in the console. Please reload the page.";
  return h("div", { class: "notice notice-error", role: "alert" }, h("strong", null, "⚠ "), prefix ? `${prefix} ` : "", message);
}

export function friendlyMessage(error: ApiError): string {
  switch (error.code) {
    case "RATE_LIMITED": {
      const retry = Number(error.extensions.retryAfterSeconds ?? error.extensions.retryAfter);
      return Number.isFinite(retry) && retry > 0
        ? `Too many attempts. Please wait ${Math.ceil(retry / 60)} minute(s) and try again.`
        : "Too many attempts. Please wait a few minutes and try again.";
    }
    case "INTERNAL":
      return "ReClo had a problem on its side. Please try again in a moment.";
    default:
      return error.message;
  }
}
