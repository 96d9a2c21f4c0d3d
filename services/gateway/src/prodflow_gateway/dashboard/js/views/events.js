// The live event feed: the app-wide stream, newest first, with a type filter and a pause switch.

import { fill, h, when } from "../dom.js";
import { shortType } from "../stream.js";

const MAX = 300;

function summary(data) {
  if (!data || typeof data !== "object") return data == null ? "" : String(data);
  const text = Object.entries(data)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return text.length > 220 ? `${text.slice(0, 219)}…` : text;
}

function item(event, id) {
  return h(
    "li",
    { dataset: { type: shortType(event.type), id: id ?? "" } },
    h("span", {}, when(event.time)),
    h("span.type", {}, shortType(event.type)),
    h("span", {}, event.experiment || "-"),
    h("span.data", {}, event.subject ? `${event.subject}  ` : "", summary(event.data)),
  );
}

export function render(root, app) {
  const filter = h("input", { type: "text", id: "event-filter", placeholder: "e.g. job. or request.approved" });
  const paused = h("input", { type: "checkbox", id: "event-pause" });
  const count = h("p.muted", { role: "status" });
  const list = h("ol.feed", { "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Events, newest first" });
  let shown = 0;
  const matches = (event) => !filter.value.trim() || shortType(event.type).includes(filter.value.trim());
  const redraw = () => {
    const entries = app.bus.recent.filter(({ event }) => matches(event)).slice(0, MAX);
    fill(list, entries.map(({ event, id }) => item(event, id)));
    shown = entries.length;
    count.textContent = `${shown} event${shown === 1 ? "" : "s"} shown since this page was opened`;
  };
  filter.addEventListener("input", redraw);
  paused.addEventListener("change", () => paused.checked || redraw());
  root.append(
    h("h1", {}, "Events"),
    h("p.muted", {}, "Every event of your experiments as it happens (requests, campaigns, jobs, labels, cycles)."),
    h(
      "div.filters",
      {},
      h("div", {}, h("label", { for: "event-filter" }, "Type contains"), filter),
      h("label.inline", { for: "event-pause" }, paused, "Pause"),
    ),
    count,
    list,
  );
  redraw();
  return app.bus.subscribe((event, id) => {
    if (paused.checked || !matches(event)) return;
    list.prepend(item(event, id));
    while (list.children.length > MAX) list.lastChild.remove();
    shown = list.children.length;
    count.textContent = `${shown} event${shown === 1 ? "" : "s"} shown since this page was opened`;
  });
}
