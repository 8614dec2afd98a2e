import { ApiError, closeLive, gql } from "../api";
import { fill, h } from "../dom";
import { ConsoleRequestPasswordResetDocument, ConsoleResetPasswordDocument, ConsoleSignUpDocument, ConsoleVerifyEmailDocument } from "../generated/graphql";
import { clearSession } from "../session";
import { friendlyMessage, type View, type ViewContext } from "../view";
import { CONSOLE_MESSAGES } from "../../../client/errors";

/**
 * The account pages anyone can open without logging in: sign up, forgot password, and the two
 * pages the mailed links open (/verify-email?token=…, /reset-password?token=…). None of them says
 * whether an address has an account.
 */

function field(id: string, label: string, input: HTMLInputElement, hint?: string) {
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);
}

function errorArea(id: string) {
  const area = h("div", { id, class: "form-error-area" });
  const show = (text: string) => fill(area, h("p", { class: "notice notice-error", role: "alert" }, h("strong", null, "⚠ "), text));
  return { area, show, clear: () => fill(area) };
}

const messageOf = (error: unknown) => (error instanceof ApiError ? friendlyMessage(error) : CONSOLE_MESSAGES.loginFault);

/** A form that disables its button while `run` is under way and shows its error. */
function wire(form: HTMLFormElement, submit: HTMLButtonElement, busyText: string, ctx: ViewContext, show: (t: string) => void, run: () => Promise<void>) {
  const label = submit.textContent ?? "";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    submit.disabled = true;
    submit.textContent = busyText;
    void run()
      .catch((error: unknown) => {
        if (ctx.alive()) show(messageOf(error));
      })
      .finally(() => {
        submit.disabled = false;
        submit.textContent = label;
      });
  });
}

const page = (ctx: ViewContext, title: string, ...children: (Node | null)[]) => fill(ctx.main, h("div", { class: "login" }, ctx.heading(title), ...children));
const done = (text: string) => h("p", { class: "notice notice-good", role: "status" }, text);
const toLogin = (text = "Go to the login page") => h("p", null, h("a", { href: "/", id: "to-login" }, text));

export const signupView: View = (ctx) => {
  const username = h("input", { id: "signup-username", name: "username", autocomplete: "nickname", required: true, spellcheck: "false", "aria-describedby": "signup-username-hint" });
  const email = h("input", { id: "signup-email", name: "email", type: "email", autocomplete: "email", required: true, spellcheck: "false" });
  const password = h("input", { id: "signup-password", name: "password", type: "password", autocomplete: "new-password", required: true, "aria-describedby": "signup-password-hint" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-large" }, "Create account");
  const errors = errorArea("signup-error");
  const form = h(
    "form",
    { class: "card form", method: "post", action: "#", novalidate: true },
    field("signup-username", "Username", username, "3–64 characters: letters, digits, '.', '_' or '-'."),
    field("signup-email", "E-mail address", email),
    field("signup-password", "Password", password, "At least 12 characters; not a common password, and not containing your username or e-mail address."),
    errors.area,
    h("div", { class: "actions" }, submit),
  );
  wire(form, submit, "Creating…", ctx, errors.show, async () => {
    errors.clear();
    const address = email.value.trim();
    if (!username.value.trim() || !address || !password.value) {
      errors.show("Please fill in all three fields.");
      return;
    }
    await gql(ConsoleSignUpDocument, { input: { username: username.value.trim(), email: address, password: password.value } });
    password.value = "";
    if (!ctx.alive()) return;
    page(
      ctx,
      "Check your inbox",
      done(`Thank you. If ${address} had no ReClo account, it has one now, and we sent a link to that address: open it to verify the address.`),
      h("p", null, "You can log in right away; recoveries can start once the address is verified."),
      toLogin("Log in"),
    );
    ctx.announce("Sign-up received. Check your inbox.");
  });
  page(ctx, "Create a ReClo account", h("p", { class: "lead" }, "Sign up with your e-mail address. We send you a link to verify it."), form, h("p", null, "Already have an account? ", h("a", { href: "/" }, "Log in")));
  queueMicrotask(() => username.focus());
};

export const forgotPasswordView: View = (ctx) => {
  const email = h("input", { id: "forgot-email", name: "email", type: "email", autocomplete: "email", required: true, spellcheck: "false" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-large" }, "Send me a link");
  const errors = errorArea("forgot-error");
  const form = h("form", { class: "card form", method: "post", action: "#", novalidate: true }, field("forgot-email", "E-mail address", email), errors.area, h("div", { class: "actions" }, submit));
  wire(form, submit, "Sending…", ctx, errors.show, async () => {
    errors.clear();
    if (!email.value.trim()) {
      errors.show("Please enter your e-mail address.");
      return;
    }
    const { requestPasswordReset } = await gql(ConsoleRequestPasswordResetDocument, { email: email.value.trim() });
    if (!ctx.alive()) return;
    page(ctx, "Check your inbox", done(requestPasswordReset.message), h("p", null, "The link works once, for a short time."), toLogin());
    ctx.announce(requestPasswordReset.message);
  });
  page(ctx, "Forgot your password?", h("p", { class: "lead" }, "Enter the e-mail address of your account and we send you a link to choose a new password."), form, toLogin("Back to the login page"));
  queueMicrotask(() => email.focus());
};

export const resetPasswordView: View = (ctx, params) => {
  const token = params.token ?? "";
  const password = h("input", { id: "reset-password", name: "password", type: "password", autocomplete: "new-password", required: true, "aria-describedby": "reset-password-hint" });
  const confirm = h("input", { id: "reset-confirm", name: "confirm", type: "password", autocomplete: "new-password", required: true });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-large" }, "Set new password");
  const errors = errorArea("reset-error");
  const form = h(
    "form",
    { class: "card form", method: "post", action: "#", novalidate: true },
    field("reset-password", "New password", password, "At least 12 characters; not a common password, and not containing your username or e-mail address."),
    field("reset-confirm", "New password, again", confirm),
    errors.area,
    h("div", { class: "actions" }, submit),
  );
  wire(form, submit, "Saving…", ctx, errors.show, async () => {
    errors.clear();
    if (!password.value || password.value !== confirm.value) {
      errors.show(password.value ? "The two passwords are not the same." : "Please enter a new password.");
      return;
    }
    // Every session of the account ends with the reset, this tab's too.
    clearSession();
    closeLive();
    await gql(ConsoleResetPasswordDocument, { input: { token, newPassword: password.value } });
    password.value = confirm.value = "";
    // The spent token leaves the address bar (and the history).
    history.replaceState(null, "", "/reset-password");
    if (!ctx.alive()) return;
    page(ctx, "Password changed", done("Your password was changed and every session of your account was logged out."), toLogin("Log in with your new password"));
    ctx.announce("Password changed.");
  });
  page(ctx, "Choose a new password", token ? form : h("p", { class: "notice notice-error", role: "alert" }, "This link has no token. Please open the link from the mail again."), toLogin("Back to the login page"));
  if (token) queueMicrotask(() => password.focus());
};

export const verifyEmailView: View = async (ctx, params) => {
  const token = params.token ?? "";
  page(ctx, "Verifying your e-mail address…", h("p", { class: "loading", role: "status" }, "One moment…"));
  try {
    try {
      await gql(ConsoleVerifyEmailDocument, { token });
    } catch (error) {
      // A session of this tab that ended meanwhile is forgotten by gql: the link needs none.
      if (!(error instanceof ApiError && error.code === "UNAUTHENTICATED")) throw error;
      await gql(ConsoleVerifyEmailDocument, { token });
    }
    history.replaceState(null, "", "/verify-email");
    if (!ctx.alive()) return;
    page(ctx, "E-mail address verified", done("Thank you: your e-mail address is verified. You can now start recoveries."), h("p", null, h("a", { href: "/#/backups", id: "to-console" }, "Continue to ReClo")));
    ctx.announce("E-mail address verified.");
  } catch (error) {
    if (!ctx.alive()) return;
    page(ctx, "This link did not work", h("p", { class: "notice notice-error", role: "alert" }, messageOf(error)), h("p", null, "Logged in, you can have a new link sent from the banner at the top of the console."), toLogin());
  }
};
