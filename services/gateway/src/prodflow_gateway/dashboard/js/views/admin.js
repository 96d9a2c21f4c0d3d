// Admin: API tokens (create, list, rotate, revoke) and the catalog's experiments and modules.

import { api, seg } from "../api.js";
import { field, fill, h, jsonForm, showFieldErrors, table, when } from "../dom.js";

const ROLES = ["reader", "requester", "manager", "admin"];

export async function renderTokens(root) {
  const alert = h("div.alert", { role: "alert" });
  const created = h("div", { "aria-live": "polite" });
  const holder = h("div");
  const user = h("input", { type: "text", required: true });
  const experiments = h("input", { type: "text", required: true, placeholder: "snoplus, legend (or *)" });
  const description = h("input", { type: "text" });
  const days = h("input", { type: "number", min: "1", max: "3650", step: "1" });
  const roleBoxes = ROLES.map((role) => h("input", { type: "checkbox", id: `role-${role}`, value: role, checked: role === "reader" }));
  const form = h(
    "form.panel",
    { novalidate: true },
    h("h2", {}, "New token"),
    field("user", "User", user),
    field("experiments", "Experiments", experiments, "Comma-separated; * for all."),
    h("fieldset#roles", {}, h("legend", {}, "Roles"), roleBoxes.map((box) => h("label.inline", { for: box.id }, box, box.value))),
    field("description", "Description", description),
    field("expires_in", "Expires in (days)", days, "Empty: the gateway's default lifetime (90 days unless configured)."),
    h("div.actions", {}, h("button.primary", { type: "submit" }, "Create token")),
  );
  root.append(h("h1", {}, "API tokens"), alert, created, holder, form);
  const load = async () => {
    try {
      const tokens = await api.get("/api/auth/tokens");
      fill(
        holder,
        table(tokens, [
          { key: "id", label: "Token" },
          { key: "user", label: "User" },
          { key: "experiments", label: "Experiments", render: (t) => t.experiments.join(", ") },
          { key: "roles", label: "Roles", render: (t) => t.roles.join(", ") },
          { key: "description", label: "Description" },
          { key: "created_at", label: "Created", render: (t) => when(t.created_at) },
          { key: "expires_at", label: "Expires", render: (t) => (t.expires_at ? when(t.expires_at) : "never") },
          { key: "last_used_at", label: "Last used", render: (t) => when(t.last_used_at) },
          { key: "revoked_at", label: "Revoked", render: (t) => when(t.revoked_at) },
          {
            key: "revoke",
            label: "Actions",
            render: (t) =>
              t.revoked_at
                ? ""
                : [
                    h("button", { type: "button", onclick: () => rotate(t) }, `Rotate ${t.id}`),
                    " ",
                    h("button.danger", { type: "button", onclick: () => revoke(t) }, `Revoke ${t.id}`),
                  ],
          },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const revoke = async (token) => {
    if (!window.confirm(`Revoke ${token.id} of ${token.user}? It stops working at once.`)) return;
    try {
      await api.del(`/api/auth/tokens/${seg(token.id)}`);
      await load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const showSecret = (token, what) =>
    fill(
      created,
      h(
        "div.notice",
        {},
        h("p", {}, `${what} ${token.id} for ${token.user}. Copy the secret now: it is not shown again.`),
        h("p", {}, h("code#new-secret", {}, token.token)),
      ),
    );
  const rotate = async (token) => {
    if (!window.confirm(`Give ${token.id} of ${token.user} a new secret? The current one stops working at once.`)) return;
    try {
      showSecret(await api.post(`/api/auth/tokens/${seg(token.id)}/rotate`), "New secret of token");
      await load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const body = {
      user: user.value.trim(),
      experiments: experiments.value.split(/[\s,]+/).filter(Boolean),
      roles: roleBoxes.filter((box) => box.checked).map((box) => box.value),
      description: description.value.trim(),
    };
    if (days.value.trim()) body.expires_in = Math.round(Number(days.value) * 86400);
    try {
      const token = await api.post("/api/auth/tokens", body);
      showFieldErrors(form, {}, {});
      showSecret(token, "Token");
      form.reset();
      await load();
    } catch (error) {
      const ids = { user: "user", experiments: "experiments", roles: "roles", description: "description", expires_in: "expires_in" };
      alert.textContent = [error.message, ...showFieldErrors(form, error.problem, ids)].join(" — ");
    }
  });
  await load();
}

const MODULE_FIELDS = ["description", "event_modes", "kinds", "command", "template_params", "default_ev_per_run", "rat_versions"];

export async function renderCatalog(root, app) {
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div");
  const isAdmin = app.me.roles.includes("admin");
  root.append(h("h1", {}, "Catalog"), alert, holder);
  let editor = null;
  const load = async () => {
  try {
    const experiments = await api.get("/api/catalog");
    const sections = await Promise.all(
      experiments.map(async (e) => {
        const modules = await api.get(`/api/catalog/${seg(e.experiment)}/modules`);
        return h(
          "section",
          { "aria-labelledby": `cat-${e.experiment}` },
          h(`h2#cat-${e.experiment}`, {}, e.experiment),
          h("p", {}, e.description, " · ", `${e.runs} runs in the run list`, " · mailing list: ", e.mailing_list.join(", ") || "-"),
          table(modules, [
            { key: "name", label: "Module" },
            { key: "event_modes", label: "Event modes", render: (m) => m.event_modes.join(", ") },
            { key: "kinds", label: "Kinds", render: (m) => m.kinds.join(", ") },
            { key: "template_params", label: "Template", render: (m) => Object.keys(m.template_params || {}).join(", ") || "-" },
            { key: "default_ev_per_run", label: "Events per job", num: true },
            { key: "command", label: "Command", render: (m) => h("code", {}, m.command) },
            ...(isAdmin
              ? [{
                  key: "edit",
                  label: "Actions",
                  render: (m) => [
                    h("button", { type: "button", "aria-label": `Edit ${m.name}`, onclick: () => editor.edit(`${e.experiment}/${m.name}`, Object.fromEntries(MODULE_FIELDS.map((k) => [k, m[k]]))) }, "Edit"),
                    " ",
                    h("button.danger", { type: "button", "aria-label": `Remove ${m.name}`, onclick: () => removeModule(e.experiment, m.name) }, "Remove"),
                  ],
                }]
              : []),
          ]),
        );
      }),
    );
    fill(holder, sections);
  } catch (error) {
    alert.textContent = error.message;
  }
  };
  const removeModule = async (experiment, module) => {
    if (!window.confirm(`Remove ${experiment}/${module} from the catalog?`)) return;
    try {
      await api.del(`/api/catalog/${seg(experiment)}/modules/${seg(module)}`);
      await load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  if (isAdmin) {
    const experimentForm = jsonForm("experiment", "Add or change an experiment", "Experiment", { description: "", mailing_list: [] }, async (name, body) => {
      await api.put(`/api/catalog/${seg(name)}`, body);
      await load();
    });
    const runsForm = jsonForm(
      "runs",
      "Add runs to a run list",
      "Experiment of the run list",
      { spans: [{ first: 100000, last: 100100, conditions: "water" }], runs: [], replace: false },
      async (name, body) => {
        await api.put(`/api/catalog/${seg(name)}/runs`, body);
        await load();
      },
    );
    root.append(experimentForm.form, runsForm.form);
    editor = jsonForm(
      "module",
      "Add or replace a module",
      "Experiment/module",
      { description: "", event_modes: ["by_events"], kinds: ["production"], command: "rat -s {seed} -N {events} -o {output_dir}/{module}_r{run}.root mac/{module}.mac", template_params: {}, default_ev_per_run: 1000 },
      async (path, body) => {
        const [experiment, module] = path.split("/");
        if (!experiment || !module) throw new Error("name it as experiment/module");
        await api.put(`/api/catalog/${seg(experiment)}/modules/${seg(module)}`, body);
        await load();
      },
    );
    root.append(editor.form);
  }
  await load();
}
