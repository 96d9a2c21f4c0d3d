// Audit log (admin): every state-changing call through the gateway, newest first, filtered, paged by cursor.

import { api } from "../api.js";
import { fill, h, table, when } from "../dom.js";

const FILTERS = [
  ["user", "User", "text", ""],
  ["path", "Path starts with", "text", "/api/requests"],
  ["since", "Since (UTC)", "datetime-local", ""],
  ["until", "Until (UTC)", "datetime-local", ""],
];

/** The answer's status code, green below 400, red from 400 on (refused or failed calls are logged too). */
function outcome(status) {
  return h(`span.badge.${status < 400 ? "s-ok" : "s-failed"}`, {}, String(status));
}

export async function render(root, app) {
  const controls = {};
  for (const [name, , type, placeholder] of FILTERS) {
    controls[name] = h("input", { type, id: `a-${name}`, placeholder: placeholder || null, step: type === "datetime-local" ? "1" : null });
    controls[name].value = app.query.get(name) || "";
  }
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div", { "aria-live": "polite" });
  const more = h("button", { type: "button", hidden: true }, "Older entries");
  const form = h(
    "form.filters",
    {},
    FILTERS.map(([name, label]) => h("div", {}, h("label", { for: `a-${name}` }, label), controls[name])),
    h("button", { type: "submit" }, "Filter"),
  );
  root.append(
    h("h1", {}, "Audit log"),
    h("p.muted", {}, "Every POST, PUT, PATCH and DELETE through the gateway, newest first. Entries are never changed or removed."),
    form,
    alert,
    holder,
    h("div.actions", {}, more),
  );
  let cursor = null;
  let shown = [];
  const load = async (next) => {
    const params = Object.fromEntries(FILTERS.map(([name]) => [name, controls[name].value.trim()]));
    try {
      const page = await api.get("/api/audit", { ...params, limit: 100, cursor: next });
      alert.textContent = "";
      cursor = page.next;
      more.hidden = !cursor;
      shown = next ? [...shown, ...page.items] : page.items;
      fill(
        holder,
        table(
          shown,
          [
            { key: "at", label: "At (UTC)", render: (e) => when(e.at) },
            { key: "user", label: "User" },
            { key: "token_id", label: "Token" },
            { key: "roles", label: "Roles", render: (e) => e.roles.join(", ") },
            { key: "method", label: "Method" },
            { key: "path", label: "Path", render: (e) => h("code", {}, e.path) },
            { key: "target", label: "Target" },
            { key: "experiment", label: "Experiment" },
            { key: "status", label: "Outcome", render: (e) => outcome(e.status) },
            { key: "request_id", label: "Request id", render: (e) => h("code", {}, e.request_id || "-") },
          ],
          `${shown.length} entr${shown.length === 1 ? "y" : "ies"} shown`,
        ),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const search = new URLSearchParams();
    for (const [name] of FILTERS) if (controls[name].value.trim()) search.set(name, controls[name].value.trim());
    history.replaceState(null, "", `#/audit${search.toString() ? `?${search}` : ""}`);
    load(null);
  });
  more.addEventListener("click", () => load(cursor));
  await load(null);
}
