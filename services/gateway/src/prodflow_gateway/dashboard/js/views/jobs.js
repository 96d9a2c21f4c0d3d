// Jobs: a table with filters (label, status, module, run, pass, site), paged by the monitor's cursor; one job
// with its backend state, outputs and history.

import { api, seg } from "../api.js";
import { badge, fill, h, table, when } from "../dom.js";

const STATUSES = ["waiting", "unsatisfied", "submitted", "running", "transferring", "completed", "failed", "partFail", "cancelled"];
const FILTERS = ["label", "status", "module", "run", "pass", "site"];

export async function renderList(root, app) {
  const controls = {};
  for (const name of FILTERS) {
    controls[name] =
      name === "status"
        ? h("select", { id: `j-${name}` }, h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", {}, s)))
        : h("input", { type: name === "run" || name === "pass" ? "number" : "text", id: `j-${name}`, min: "1" });
    controls[name].value = app.query.get(name) || "";
  }
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div", { "aria-live": "polite" });
  const more = h("button", { type: "button", hidden: true }, "Next page");
  const form = h(
    "form.filters",
    {},
    FILTERS.map((name) => h("div", {}, h("label", { for: `j-${name}` }, name[0].toUpperCase() + name.slice(1)), controls[name])),
    h("button", { type: "submit" }, "Filter"),
  );
  root.append(h("h1", {}, "Jobs"), form, alert, holder, h("div.actions", {}, more));
  let cursor = null;
  let params = {};
  const load = async (next) => {
    // a cursor is good only for the filters of the page that gave it: the next page keeps them
    if (!next) params = Object.fromEntries(FILTERS.map((name) => [name, controls[name].value.trim()]));
    try {
      const page = await api.get("/api/jobs", { ...params, limit: 100, cursor: next });
      alert.textContent = "";
      cursor = page.next;
      more.hidden = !cursor;
      fill(
        holder,
        table(
          page.items,
          [
            { key: "_id", label: "Job", render: (j) => h("a", { href: `#/jobs/${seg(j._id)}` }, j._id) },
            { key: "status", label: "Status", render: (j) => badge(j.status) },
            { key: "module", label: "Module" },
            { key: "run", label: "Run", num: true },
            { key: "pass", label: "Pass", num: true },
            { key: "attempt", label: "Attempt", num: true },
            { key: "site", label: "Site" },
            { key: "updated_at", label: "Updated", render: (j) => when(j.updated_at) },
          ],
          `${page.count} job${page.count === 1 ? "" : "s"} on this page`,
        ),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const search = new URLSearchParams();
    for (const name of FILTERS) if (controls[name].value.trim()) search.set(name, controls[name].value.trim());
    history.replaceState(null, "", `#/jobs${search.toString() ? `?${search}` : ""}`);
    load(null);
  });
  more.addEventListener("click", () => load(cursor));
  await load(null);
}

export async function renderOne(root, app) {
  const [id] = app.params;
  const alert = h("div.alert", { role: "alert" });
  const body = h("div");
  root.append(h("h1", {}, `Job ${id}`), alert, body);
  const load = async () => {
    try {
      const job = await api.get(`/api/jobs/${seg(id)}`);
      fill(
        body,
        h(
          "dl.facts",
          {},
          [
            ["Status", badge(job.status)],
            ["Label", h("a", { href: `#/labels/${seg(job.label)}` }, job.label)],
            ["Experiment", job.experiment],
            ["Module", job.module],
            ["Run / chunk / pass", `${job.run} / ${job.chunk} / ${job.pass}`],
            ["Attempt", job.attempt],
            ["Events", job.events],
            ["Site", job.site],
            ["Backend", job.backend ? `${job.backend.name} ${job.backend.id ?? ""} ${job.backend.state ?? ""}` : "-"],
            ["Database", job.database],
            ["Campaign", job.campaign_id || "-"],
            ["Request", job.request_id ? h("a", { href: `#/requests/${seg(job.request_id)}` }, job.request_id) : "-"],
            ["Parent", job.parent || "-"],
            ["Updated", when(job.updated_at)],
          ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
        ),
        h("h2", {}, "Outputs"),
        table(job.outputs || [], [
          { key: "name", label: "File" },
          { key: "url", label: "URL" },
          { key: "size", label: "Bytes", num: true },
          { key: "adler32", label: "adler32" },
        ]),
        h("h2", {}, "History"),
        table(job.history || [], [
          { key: "at", label: "When", render: (r) => when(r.at) },
          { key: "status", label: "Status", render: (r) => badge(r.status) },
          { key: "reason", label: "Reason" },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
  return app.bus.subscribe((event) => {
    if (event.subject === id) load();
  });
}
