// Webhooks: the subscriptions the caller manages, their state (failing shown), and each one's last deliveries.

import { api, seg } from "../api.js";
import { fill, h, table, when } from "../dom.js";

/** ok in green; failing (gave up, events kept) and paused in red. */
function state(w) {
  if (w.state === "failing") return h("span.badge.s-failed", {}, "failing");
  return w.active ? h("span.badge.s-ok", {}, "ok") : h("span.badge.s-cancelled", {}, "paused");
}

function outcome(d) {
  const ok = d.status_code !== null && d.status_code < 300 && !d.error;
  return h(`span.badge.${ok ? "s-ok" : "s-failed"}`, {}, d.status_code === null ? "no answer" : String(d.status_code));
}

export async function render(root) {
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div");
  const log = h("section", { "aria-live": "polite" });
  root.append(
    h("h1", {}, "Webhooks"),
    h("p.muted", {}, "Events pushed to other tools' URLs, signed (Standard Webhooks). Create them with prodflow webhook create."),
    alert,
    holder,
    log,
  );
  const showDeliveries = async (w) => {
    try {
      const page = await api.get(`/api/webhooks/${seg(w.id)}/deliveries`, { limit: 20 });
      fill(
        log,
        h("h2", {}, `Last deliveries of ${w.id}`),
        table(page.items, [
          { key: "at", label: "At (UTC)", render: (d) => when(d.at) },
          { key: "event_id", label: "Event", render: (d) => h("code", {}, d.event_id) },
          { key: "attempt", label: "Attempt", num: true },
          { key: "status_code", label: "Outcome", render: outcome },
          { key: "latency_ms", label: "Latency (ms)", num: true },
          { key: "error", label: "Error" },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const resume = async (w) => {
    try {
      await api.patch(`/api/webhooks/${seg(w.id)}`, { active: true });
      await load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const load = async () => {
    try {
      const page = await api.get("/api/webhooks");
      alert.textContent = "";
      fill(
        holder,
        table(page.items, [
          { key: "id", label: "Webhook", render: (w) => h("code", {}, w.id) },
          { key: "url", label: "URL" },
          { key: "event_types", label: "Events", render: (w) => w.event_types.join(", ") },
          { key: "experiments", label: "Experiments", render: (w) => w.experiments.join(", ") || "all" },
          { key: "state", label: "State", render: state },
          { key: "pending", label: "Waiting", num: true },
          {
            key: "action",
            label: "Actions",
            render: (w) => [
              h("button", { type: "button", onclick: () => showDeliveries(w) }, `Deliveries of ${w.id}`),
              w.state === "failing" || !w.active
                ? [" ", h("button", { type: "button", onclick: () => resume(w) }, `Resume ${w.id}`)]
                : null,
            ],
          },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
}
