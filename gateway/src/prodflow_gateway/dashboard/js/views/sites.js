// Sites: where jobs run, with their job counts; drain (submit nothing new) and undrain.

import { api, seg } from "../api.js";
import { badge, fill, h, table } from "../dom.js";

export async function render(root) {
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div");
  root.append(h("h1", {}, "Sites"), alert, holder);
  const toggle = async (site) => {
    try {
      await api.post(`/api/sites/${seg(site.name)}/${site.drained ? "undrain" : "drain"}`);
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
            render: (s) => h("button", { type: "button", onclick: () => toggle(s) }, s.drained ? `Undrain ${s.name}` : `Drain ${s.name}`),
          },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
}
