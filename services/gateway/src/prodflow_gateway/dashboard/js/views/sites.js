// Sites: where jobs run, with their job counts; drain (submit nothing new) and undrain.

import { api, seg } from "../api.js";
import { badge, fill, h, jsonForm, table } from "../dom.js";

const SITE_FIELDS = ["backend", "storage_element", "max_running", "max_attempts", "retry_exit_codes", "max_walltime_s", "options", "queue_order", "command_template"];

export async function render(root, app) {
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div");
  const isAdmin = app.me.roles.includes("admin");
  root.append(h("h1", {}, "Sites"), alert, holder);
  let editor = null;
  const toggle = async (site) => {
    try {
      await api.post(`/api/sites/${seg(site.name)}/${site.drained ? "undrain" : "drain"}`);
      await load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const remove = async (site) => {
    if (!window.confirm(`Remove site ${site.name}? (refused while it has unfinished jobs)`)) return;
    try {
      await api.del(`/api/sites/${seg(site.name)}`);
      await load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const load = async () => {
    try {
      const sites = await api.get("/api/sites");
      fill(
        holder,
        table(sites, [
          { key: "name", label: "Site" },
          { key: "backend", label: "Backend" },
          { key: "storage_element", label: "Storage element" },
          { key: "max_running", label: "Max running", num: true },
          { key: "counts", label: "Jobs by status", render: (s) => Object.entries(s.counts || {}).map(([k, n]) => `${k} ${n}`).join(", ") || "-" },
          { key: "drained", label: "Submitting", render: (s) => badge(s.drained ? "drained" : "ok") },
          {
            key: "action",
            label: "Actions",
            render: (s) => [
              h("button", { type: "button", onclick: () => toggle(s) }, s.drained ? `Undrain ${s.name}` : `Drain ${s.name}`),
              isAdmin
                ? [
                    " ",
                    h("button", { type: "button", "aria-label": `Edit ${s.name}`, onclick: () => editor.edit(s.name, Object.fromEntries(SITE_FIELDS.map((k) => [k, s[k]]))) }, "Edit"),
                    " ",
                    h("button.danger", { type: "button", "aria-label": `Remove ${s.name}`, onclick: () => remove(s) }, "Remove"),
                  ]
                : null,
            ],
          },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  if (isAdmin) {
    editor = jsonForm(
      "site",
      "Add or replace a site",
      "Site name",
      { backend: "slurm", storage_element: "file:///data/se", max_running: 100, max_attempts: 3, retry_exit_codes: [137, 143], options: { partition: "debug" } },
      async (name, body) => {
        await api.put(`/api/sites/${seg(name)}`, body);
        await load();
      },
    );
    root.append(editor.form);
  }
  await load();
}
