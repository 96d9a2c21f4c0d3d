// Campaigns: the list, submitting a jobs.json (upload or paste, dry run first), and one campaign with its
// counts, its .exactly and cancellation.

import { api, seg } from "../api.js";
import { badge, field, fill, h, showFieldErrors, table, when } from "../dom.js";
import { shortType } from "../stream.js";

export async function renderList(root, app) {
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div");
  const label = h("input", { type: "text", id: "c-label-filter", placeholder: "exact label" });
  label.value = app.query.get("label") || "";
  const filters = h(
    "form.filters",
    {},
    h("div", {}, h("label", { for: "c-label-filter" }, "Label"), label),
    h("button", { type: "submit" }, "Filter"),
  );
  root.append(h("h1", {}, "Campaigns"), h("p", {}, h("a", { href: "#/campaigns/new" }, "Submit a jobs.json")), filters, alert, holder);
  const load = async () => {
    try {
      const campaigns = await api.get("/api/campaigns", { label: label.value.trim() });
      fill(
        holder,
        table(campaigns, [
          { key: "id", label: "Campaign", render: (c) => h("a", { href: `#/campaigns/${seg(c.id)}` }, c.id) },
          { key: "label", label: "Label", render: (c) => h("a", { href: `#/labels/${seg(c.label)}` }, c.label) },
          { key: "experiment", label: "Experiment" },
          { key: "database", label: "Database" },
          { key: "site", label: "Site" },
          { key: "pass", label: "Pass", num: true },
          { key: "jobs", label: "Jobs", num: true },
          { key: "request_id", label: "Request", render: (c) => (c.request_id ? h("a", { href: `#/requests/${seg(c.request_id)}` }, c.request_id) : "-") },
          { key: "created_at", label: "Created", render: (c) => when(c.created_at) },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
  return app.bus.subscribe((event) => shortType(event.type) === "campaign.created" && load());
}

export async function renderForm(root, app) {
  const alert = h("div.alert", { role: "alert" });
  const result = h("div", { "aria-live": "polite" });
  const file = h("input", { type: "file", accept: ".json,application/json" });
  const text = h("textarea", { rows: 10, spellcheck: "false", placeholder: '{"rat_v": "7.0.15", "modules": [...]}' });
  const site = h("select", {}, h("option", { value: "" }, "the default site"));
  const database = h("select", {}, h("option", { value: "" }, "from the file's kind"), h("option", {}, "data-production"), h("option", {}, "data-processing"));
  const label = h("input", { type: "text", placeholder: "for modules that name none" });
  const experiment = h("input", { type: "text", placeholder: "default: the file's" });
  const pass = h("input", { type: "number", min: "1", placeholder: "next free pass" });
  file.addEventListener("change", async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  const form = h(
    "form.panel",
    { novalidate: true },
    field("jobs-file", "jobs.json file", file),
    field("jobs", "or its content", text),
    field("site", "Site", site),
    field("database", "Database", database),
    field("label", "Label", label),
    field("experiment", "Experiment", experiment),
    field("pass_number", "Pass", pass),
    h(
      "div.actions",
      {},
      h("button", { type: "button", onclick: () => send(true) }, "Dry run"),
      h("button.primary", { type: "submit" }, "Submit campaign"),
    ),
    result,
  );
  root.append(h("h1", {}, "Submit a jobs.json"), alert, form);
  try {
    const sites = await api.get("/api/sites");
    site.append(...sites.map((s) => h("option", { value: s.name }, `${s.name} (${s.backend}${s.drained ? ", drained" : ""})`)));
  } catch (error) {
    alert.textContent = error.message;
  }
  const send = async (dryRun) => {
    alert.textContent = "";
    fill(result);
    let jobs;
    try {
      jobs = JSON.parse(text.value);
    } catch (error) {
      showFieldErrors(form, { errors: [{ field: "jobs", message: `not JSON: ${error.message}` }] }, { jobs: "jobs" });
      alert.textContent = "The jobs.json is not valid JSON.";
      return;
    }
    const body = { jobs };
    if (site.value) body.site = site.value;
    if (database.value) body.database = database.value;
    if (label.value.trim()) body.label = label.value.trim();
    if (experiment.value.trim()) body.experiment = experiment.value.trim();
    if (pass.value) body.pass_number = Number(pass.value);
    try {
      const answer = await api.post("/api/campaigns", body, dryRun ? { dry_run: true } : undefined);
      showFieldErrors(form, {}, {});
      if (dryRun) {
        fill(
          result,
          h("p", {}, `Would create ${answer.jobs} jobs of ${answer.labels.join(", ")} (pass ${answer.pass}) on ${answer.site} in ${answer.database}.`),
          table(answer.modules, [
            { key: "module", label: "Module" },
            { key: "label", label: "Label" },
            { key: "jobs", label: "Jobs", num: true },
            { key: "events", label: "Events", num: true },
          ]),
        );
      } else {
        app.navigate(`/campaigns/${seg(answer.id)}`);
      }
    } catch (error) {
      const ids = { jobs: "jobs", site: "site", database: "database", label: "label", experiment: "experiment", pass_number: "pass_number" };
      alert.textContent = [error.message, ...showFieldErrors(form, error.problem, ids)].join(" — ");
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(false);
  });
}

export async function renderOne(root, app) {
  const [id] = app.params;
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  const body = h("div");
  const exactly = h("pre.log", { hidden: true, tabindex: "0", "aria-label": ".exactly" });
  root.append(h("h1", {}, `Campaign ${id}`), alert, notice, body, exactly);
  const cancel = async () => {
    if (!window.confirm(`Cancel every unfinished job of ${id}?`)) return;
    try {
      const done = await api.post(`/api/campaigns/${seg(id)}/cancel`, { reason: "cancelled from the dashboard" });
      notice.textContent = `${done.job_ids.length} jobs cancelled.`;
      load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const showExactly = async () => {
    exactly.textContent = await api.text(`/api/campaigns/${seg(id)}/exactly`);
    exactly.hidden = false;
  };
  const load = async () => {
    try {
      const c = await api.get(`/api/campaigns/${seg(id)}`);
      fill(
        body,
        h(
          "dl.facts",
          {},
          [
            ["Label", h("a", { href: `#/labels/${seg(c.label)}` }, c.label)],
            ["State", badge(c.state)],
            ["Experiment", c.experiment],
            ["Database", c.database],
            ["Site", c.site],
            ["Pass", c.pass],
            ["Jobs", c.jobs],
            ["By status", Object.entries(c.counts || {}).map(([s, n]) => `${s} ${n}`).join(", ") || "-"],
            ["Request", c.request_id ? h("a", { href: `#/requests/${seg(c.request_id)}` }, c.request_id) : "-"],
            ["Software", c.rat_v],
            ["Created", `${when(c.created_at)} by ${c.created_by}`],
          ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
        ),
        h(
          "div.actions",
          {},
          h("button", { type: "button", onclick: showExactly }, "Show .exactly"),
          h("button.danger", { type: "button", onclick: cancel }, "Cancel unfinished jobs"),
        ),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
  return app.bus.subscribe((event) => event.data?.campaign_id === id && load());
}
