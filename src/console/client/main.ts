import { closeLive, gql, onLiveStatus, setReauthHandler, setSessionEndedHandler } from "./api";
import { reauthDialog } from "./reauth";
import { fill, h } from "./dom";
import { ConsoleLogOutDocument, ConsoleMeDocument, ConsoleResendVerificationEmailDocument } from "./generated/graphql";
import { clearSession, getSession } from "./session";
import { CONSOLE_MESSAGES } from "../../client/errors";
import type { View, ViewContext } from "./view";
import { loginView } from "./views/login";
import { backupsView } from "./views/backups";
import { recoveryView } from "./views/recovery";
import { recoveriesView } from "./views/recoveries";
import { instancesView } from "./views/instances";
import { sourcesView } from "./views/sources";
import { forgotPasswordView, resetPasswordView, signupView, verifyEmailView } from "./views/account";
import { notificationSettingsView, notificationsView } from "./views/notifications";
import { activityView, supportAccessView } from "./views/support";
import { agentKeysView } from "./views/agent-keys";
import { trashView } from "./views/trash";

const routes: { pattern: RegExp; keys: string[]; view: View; nav?: string }[] = [
  { pattern: /^#?\/?$/, keys: [], view: backupsView, nav: "#/backups" },
  { pattern: /^#\/backups$/, keys: [], view: backupsView, nav: "#/backups" },
  { pattern: /^#\/recoveries$/, keys: [], view: recoveriesView, nav: "#/recoveries" },
  { pattern: /^#\/recoveries\/([\w-]{1,64})$/, keys: ["id"], view: recoveryView, nav: "#/recoveries" },
  { pattern: /^#\/machines$/, keys: [], view: instancesView, nav: "#/machines" },
  { pattern: /^#\/servers$/, keys: [], view: sourcesView, nav: "#/servers" },
  // ?id= is the link in a notification's e-mail.
  { pattern: /^#\/notifications(?:\?id=([\w-]{1,64}))?$/, keys: ["id"], view: notificationsView, nav: "#/notifications" },
  { pattern: /^#\/settings\/notifications$/, keys: [], view: notificationSettingsView, nav: "#/notifications" },
  { pattern: /^#\/support$/, keys: [], view: supportAccessView, nav: "#/support" },
  { pattern: /^#\/activity$/, keys: [], view: activityView, nav: "#/activity" },
  { pattern: /^#\/agent-keys$/, keys: [], view: agentKeysView, nav: "#/agent-keys" },
  { pattern: /^#\/trash$/, keys: [], view: trashView, nav: "#/trash" },
];

/** Pages for everyone, logged in or not (the login form is shown for any other address then). */
const publicRoutes: { pattern: RegExp; view: View }[] = [
  { pattern: /^#\/signup$/, view: signupView },
  { pattern: /^#\/forgot-password$/, view: forgotPasswordView },
];
/** The pages mailed links open (served by the API at these paths): their token is in the query. */
const linkPages: Record<string, View> = { "/verify-email": verifyEmailView, "/reset-password": resetPasswordView };

const NAV = [
  { href: "#/backups", label: "Restore points" },
  { href: "#/recoveries", label: "Recoveries" },
  { href: "#/machines", label: "Machines" },
  { href: "#/servers", label: "Servers" },
  { href: "#/notifications", label: "Notifications" },
  { href: "#/support", label: "Support access" },
  { href: "#/activity", label: "Activity" },
  { href: "#/agent-keys", label: "Agent keys" },
  { href: "#/trash", label: "Trash" },
];

// ---------------------------------------------------------------------------------------------
// Page frame: header with navigation, connection banner, <main>, live region.

const app = document.getElementById("app")!;
const announcer = h("div", { class: "visually-hidden", "aria-live": "polite", "aria-atomic": "true", id: "announcer" });
const connection = h("div", { class: "connection", role: "status", hidden: true });
const header = h("header", { class: "site-header" });
/** "Verify your e-mail address", while the logged-in account's address is not verified. */
const verifyBanner = h("div", { id: "verify-banner", class: "notice notice-warning", role: "status", hidden: true });
const main = h("main", { id: "main", tabindex: "-1" });
fill(app, header, connection, verifyBanner, main, announcer);

/** The session token whose address was last found verified (asked once per token, until verified). */
let verifiedFor: string | undefined;

function checkVerified(): void {
  const session = getSession();
  if (!session || verifiedFor === session.token || linkPages[location.pathname]) {
    verifyBanner.hidden = true;
    return;
  }
  const token = session.token;
  void gql(ConsoleMeDocument)
    .then(({ me }) => {
      if (getSession()?.token !== token) return;
      if (me.emailVerified) {
        verifiedFor = token;
        verifyBanner.hidden = true;
        return;
      }
      const resend = h("button", { type: "button", class: "btn btn-secondary btn-small", id: "resend-verification" }, "Send the link again");
      const status = h("span", { class: "hint" });
      resend.addEventListener("click", () => {
        resend.disabled = true;
        gql(ConsoleResendVerificationEmailDocument)
          .then(({ resendVerificationEmail }) => {
            status.textContent = resendVerificationEmail ? " A new link is on its way." : " Your address is already verified.";
            announce(status.textContent);
          })
          .catch((error: unknown) => {
            resend.disabled = false;
            status.textContent = ` ${error instanceof Error ? error.message : String(error)}`;
          });
      });
      fill(verifyBanner, h("strong", null, "Please verify your e-mail address. "), "Open the link in the mail we sent you; recoveries can start once it is verified. ", resend, status);
      verifyBanner.hidden = false;
    })
    .catch(() => {
      // The banner is a reminder only; the API refuses what needs a verified address anyway.
    });
}

let flash: string | undefined;
const cleanups: (() => void)[] = [];
let generation = 0;

function announce(text: string): void {
  // Clear first so the same sentence twice is still read out.
  announcer.textContent = "";
  window.setTimeout(() => (announcer.textContent = text), 50);
}

onLiveStatus((status) => {
  connection.hidden = status === "connected";
  fill(connection, status === "connected" ? "" : h("span", null, "⟳ Connection lost: reconnecting… Your recovery keeps running on the server."));
});

setReauthHandler(reauthDialog);

setSessionEndedHandler(() => {
  flash = CONSOLE_MESSAGES.sessionEnded;
  render();
});

async function logOut(): Promise<void> {
  try {
    await gql(ConsoleLogOutDocument);
  } catch {
    // The token is forgotten either way.
  }
  clearSession();
  closeLive();
  // The next person to log in on this tab starts from the beginning, not on the last page.
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  flash = "You have logged out.";
  render();
}

function renderHeader(activeNav: string | undefined): void {
  const session = getSession();
  const brand = h("a", { class: "brand", href: "#/backups" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "✓"), "ReClo");
  if (!session) {
    fill(header, h("div", { class: "header-inner" }, brand));
    return;
  }
  const logout = h("button", { type: "button", class: "btn btn-secondary btn-small" }, "Log out");
  logout.addEventListener("click", () => {
    logout.disabled = true;
    void logOut();
  });
  fill(
    header,
    h(
      "div",
      { class: "header-inner" },
      brand,
      h(
        "nav",
        { "aria-label": "Main" },
        h(
          "ul",
          null,
          NAV.map((item) => h("li", null, h("a", { href: item.href, "aria-current": item.href === activeNav ? "page" : null }, item.label))),
        ),
      ),
      h("div", { class: "user" }, h("span", { class: "user-name" }, session.email || session.username), logout),
    ),
  );
}

function render(): void {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch {
      // keep going
    }
  }
  generation += 1;
  const mine = generation;
  const hash = location.hash;
  const session = getSession();
  let view: View = loginView;
  let params: Record<string, string> = {};
  let nav: string | undefined;
  const linkPage = linkPages[location.pathname];
  const publicRoute = publicRoutes.find((r) => r.pattern.test(hash));
  if (linkPage) {
    view = linkPage;
    params = { token: new URLSearchParams(location.search).get("token") ?? "" };
  } else if (!session && publicRoute) {
    view = publicRoute.view;
  } else if (session) {
    const route = routes.find((r) => r.pattern.test(hash));
    if (route) {
      const m = route.pattern.exec(hash)!;
      params = Object.fromEntries(route.keys.map((k, i) => [k, decodeURIComponent(m[i + 1] ?? "")]));
      view = route.view;
      nav = route.nav;
    } else {
      view = notFoundView;
    }
  }
  renderHeader(nav);
  checkVerified();
  main.replaceChildren();
  let focused = false;
  const ctx: ViewContext = {
    main,
    alive: () => mine === generation,
    onCleanup: (fn) => {
      if (mine === generation) cleanups.push(fn);
      else fn();
    },
    announce,
    heading: (text) => {
      document.title = `${text} · ReClo`;
      const h1 = h("h1", { tabindex: "-1" }, text);
      // Move focus to the new page's heading (not on the very first load of the login form).
      if (!focused && (view !== loginView || document.activeElement !== document.body)) {
        focused = true;
        queueMicrotask(() => {
          if (h1.isConnected) h1.focus({ preventScroll: false });
        });
      }
      return h1;
    },
    navigate: (to) => {
      if (location.hash === to) render();
      else location.hash = to;
    },
  };
  const params2 = view === loginView ? { flash: flash ?? "" } : params;
  flash = undefined;
  const result = view(ctx, params2);
  if (result instanceof Promise) {
    result.catch((error: unknown) => {
      if (!ctx.alive()) return;
      main.appendChild(h("div", { class: "notice notice-error", role: "alert" }, `Something went wrong: ${error instanceof Error ? error.message : String(error)}`));
    });
  }
}

const notFoundView: View = (ctx) => {
  fill(ctx.main, ctx.heading("Page not found"), h("p", null, "There is nothing at this address. "), h("p", null, h("a", { href: "#/backups" }, "Go to your restore points")));
};

window.addEventListener("hashchange", render);
render();
