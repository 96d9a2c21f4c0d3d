// Health of the gateway, CouchDB and every service, refreshed every 10 s.

import { call } from "../api.js";
import { badge, fill, h, table, when } from "../dom.js";

async function healthDocument() {
  try {
    return await call("GET", "/healthz");
  } catch (error) {
    if (error.status === 503 && error.problem?.services) return error.problem; // degraded, still a report
    throw error;
  }
}

function rows(doc) {
  const out = [{ part: "gateway", status: doc.status, detail: "" }];
  for (const [name, check] of Object.entries(doc.checks || {})) {
    out.push({ part: name, status: check === "ok" ? "ok" : "down", detail: check === "ok" ? "" : check });
  }
  for (const [name, service] of Object.entries(doc.services || {})) {
    const failing = Object.entries(service.checks || {}).filter(([, v]) => v !== "ok");
    const detail = service.detail || failing.map(([k, v]) => `${k}: ${v}`).join(", ");
    out.push({ part: name, status: service.status, detail });
  }
  return out;
}

export function render(root) {
  const summary = h("p", { role: "status" });
  const holder = h("div");
  const alert = h("div.alert", { role: "alert" });
  root.append(h("h1", {}, "Health"), summary, alert, holder);
  const refresh = async () => {
    try {
      const doc = await healthDocument();
      alert.textContent = "";
      fill(summary, "System: ", badge(doc.status), ` · checked ${when(new Date().toISOString())} UTC`);
      fill(
        holder,
        table(rows(doc), [
          { key: "part", label: "Part" },
          { key: "status", label: "Status", render: (r) => badge(r.status) },
          { key: "detail", label: "Detail" },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  refresh();
  const timer = setInterval(refresh, 10000);
  return () => clearInterval(timer);
}
