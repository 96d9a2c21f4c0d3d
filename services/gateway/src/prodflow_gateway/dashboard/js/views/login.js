// Log in with an API token: checked with /api/auth/whoami, kept for the tab (or this browser if asked).

import { api, token } from "../api.js";
import { field, h } from "../dom.js";

export function render(root, app) {
  const secret = h("input", { type: "password", autocomplete: "current-password", required: true, spellcheck: "false" });
  const remember = h("input", { type: "checkbox", id: "remember" });
  const alert = h("div.alert", { role: "alert" });
  const form = h(
    "form.panel",
    { novalidate: true },
    field("token", "API token", secret, "A token from your admin, or the admin token in the data folder of 'prodflow up' (gateway-admin-token)."),
    h("label.inline", { for: "remember" }, remember, "Remember on this browser"),
    h("div.actions", {}, h("button.primary", { type: "submit" }, "Log in")),
    alert,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const value = secret.value.trim();
    if (!value) {
      alert.textContent = "Enter a token.";
      secret.focus();
      return;
    }
    token.set(value, remember.checked);
    try {
      const me = await api.get("/api/auth/whoami");
      await app.signedIn(me);
      app.navigate(app.query.get("next") || "/requests");
    } catch (error) {
      token.clear();
      alert.textContent = error.status === 401 ? "That token is unknown, revoked or expired." : error.message;
      secret.focus();
    }
  });
  root.append(h("h1", {}, "Log in to prodflow"), form);
  secret.focus();
}
