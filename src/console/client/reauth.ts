import { ApiError, gql } from "./api";
import { h, uid } from "./dom";
import { ConsoleReauthenticateDocument } from "./generated/graphql";
import { friendlyMessage } from "./view";

/**
 * The password dialog of the deletion defense (issue 18): when an action answers REAUTH_REQUIRED,
 * the person enters the password again (reauthenticate) and the action is tried once more (api.ts).
 * Resolves true once reauthenticated, false when cancelled. A wrong password stays in the dialog.
 */
export function reauthDialog(): Promise<boolean> {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const titleId = uid("reauth-title");
  const inputId = uid("reauth-password");
  const password = h("input", { id: inputId, type: "password", name: "password", autocomplete: "current-password", required: true });
  const message = h("div", { role: "alert", class: "reauth-error" });
  const confirm = h("button", { type: "submit", class: "btn btn-primary" }, "Confirm");
  const cancel = h("button", { type: "button", class: "btn btn-secondary" }, "Cancel");
  const form = h(
    "form",
    { class: "form", method: "dialog", novalidate: true },
    h("div", { class: "field" }, h("label", { for: inputId }, "Password"), password),
    message,
    h("div", { class: "actions" }, confirm, cancel),
  );
  const dialog = h(
    "dialog",
    { class: "dialog reauth-dialog", "aria-labelledby": titleId },
    h("h2", { id: titleId }, "Enter your password again"),
    h("p", null, "Deleting a restore point or keeping fewer of them needs your password, entered in the last few minutes, so that someone who took over this session cannot destroy your backups."),
    form,
  );
  document.body.appendChild(dialog);
  return new Promise<boolean>((resolve) => {
    let result = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!password.value) {
        message.textContent = "Please enter your password.";
        password.focus();
        return;
      }
      confirm.disabled = true;
      confirm.textContent = "Checking…";
      message.textContent = "";
      gql(ConsoleReauthenticateDocument, { password: password.value })
        .then(() => {
          result = true;
          dialog.close();
        })
        .catch((error: unknown) => {
          message.textContent =
            error instanceof ApiError && error.code === "UNAUTHENTICATED" && error.extensions.reason === "BAD_CREDENTIALS"
              ? "That password is not right. Please try again."
              : error instanceof ApiError
                ? friendlyMessage(error)
                : String(error);
          password.select();
          password.focus();
        })
        .finally(() => {
          confirm.disabled = false;
          confirm.textContent = "Confirm";
        });
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener?.isConnected) opener.focus();
      resolve(result);
    });
    dialog.showModal();
    password.focus();
  });
}
