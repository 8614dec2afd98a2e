import { ApiError, gql } from "../api";
import { fill, h } from "../dom";
import { ConsoleLogInDocument } from "../generated/graphql";
import { setSession } from "../session";
import { friendlyMessage, type View } from "../view";
import { CONSOLE_MESSAGES } from "../../../client/errors";

export const loginView: View = (ctx, params) => {
  const email = h("input", { id: "login-email", name: "email", type: "email", autocomplete: "username", required: true, spellcheck: "false" });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-large" }, "Log in");
  const errorArea = h("div", { id: "login-error", class: "form-error-area" });
  // method=post: even if this script failed to run, the password would never end up in a URL
  // (and the CSP's form-action 'none' stops the submission).
  const form = h(
    "form",
    { class: "card form", method: "post", action: "#", novalidate: true, "aria-describedby": "login-help" },
    h("div", { class: "field" }, h("label", { for: "login-email" }, "E-mail address"), email),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
    errorArea,
    h("div", { class: "actions" }, submit),
  );

  const showError = (text: string) => {
    fill(errorArea, h("p", { class: "notice notice-error", role: "alert" }, h("strong", null, "⚠ "), text));
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    if (!email.value.trim() || !password.value) {
      showError(!email.value.trim() ? "Please enter your e-mail address." : "Please enter your password.");
      (!email.value.trim() ? email : password).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Logging in…";
    fill(errorArea);
    void (async () => {
      try {
        const { logIn } = await gql(ConsoleLogInDocument, { input: { email: email.value.trim(), password: password.value } });
        password.value = "";
        setSession({ token: logIn.token, expiresAt: logIn.expiresAt, email: logIn.user.email, username: logIn.user.username });
        ctx.navigate(location.hash && location.hash !== "#/login" ? location.hash : "#/backups");
      } catch (error) {
        if (!ctx.alive()) return;
        submit.disabled = false;
        submit.textContent = "Log in";
        const apiError = error instanceof ApiError ? error : undefined;
        if (apiError?.code === "UNAUTHENTICATED") {
          showError(CONSOLE_MESSAGES.loginMismatch);
          password.select();
          password.focus();
        } else {
          showError(apiError ? friendlyMessage(apiError) : CONSOLE_MESSAGES.loginFault);
        }
      }
    })();
  });

  fill(
    ctx.main,
    h(
      "div",
      { class: "login" },
      ctx.heading("Log in to ReClo"),
      params.flash ? h("p", { class: "notice notice-info", role: "status" }, params.flash) : null,
      h("p", { id: "login-help", class: "lead" }, "ReClo keeps copies of your servers and can bring them back when something breaks. Log in with your ReClo account."),
      form,
      h("p", null, h("a", { href: "#/forgot-password", id: "forgot-link" }, "Forgot your password?")),
      h("p", null, "New to ReClo? ", h("a", { href: "#/signup", id: "signup-link" }, "Create an account")),
    ),
  );
  queueMicrotask(() => email.focus());
};
