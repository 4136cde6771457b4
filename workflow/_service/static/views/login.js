// Sign in with an API key: checked with GET /api/me, then kept for this tab only.

import { api, session } from "../lib/api.js";
import { h } from "../lib/dom.js";

export async function render(ctx) {
  document.title = "Sign in · taskloom";
  const key = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    required: true,
    placeholder: "tlk_…",
  });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");

  async function signIn(event) {
    event.preventDefault();
    button.disabled = true;
    try {
      const me = await api("/api/me", { key: key.value.trim(), signOutOn401: false });
      session.key = key.value.trim();
      session.me = me;
      ctx.navigate(ctx.query.get("next") || "#/runs");
    } catch (error) {
      ctx.showError(
        error.status === 401 ? `That key was not accepted: ${error.message}` : error.message,
      );
      key.select();
    } finally {
      button.disabled = false;
    }
  }

  ctx.root.append(
    h(
      "form",
      { class: "card login", onsubmit: signIn, "aria-labelledby": "login-title" },
      h("h1", { id: "login-title" }, "Sign in"),
      h(
        "p",
        { class: "muted" },
        "Paste an API key. Create one with ",
        h("code", {}, "taskloom keys create --name NAME --role ROLE"),
        ". It is kept only until this tab closes.",
      ),
      h("label", { for: "api-key" }, "API key"),
      key,
      button,
    ),
  );
  key.focus();
}
