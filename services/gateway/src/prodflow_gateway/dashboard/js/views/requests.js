// Production requests: the list with filters, the form (checked like the API checks it, then previewed by the
// API itself), and one request with its history and the actions its state allows.

import { ApiError, api, seg } from "../api.js";
import { badge, field, fill, h, showFieldErrors, table, when } from "../dom.js";
import { shortType } from "../stream.js";

const STATES = ["draft", "submitted", "approved", "rejected", "submitted-to-production", "completed", "failed", "cancelled"];
const LABEL = /^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MODES = {
  by_time: "by time",
  by_events: "by events",
  run_by_run: "run by run",
  run_by_run_events: "run by run, with events",
};
const TIME_UNITS = ["second", "minute", "hour", "day", "week", "year"];

// ---- list -------------------------------------------------------------------------------------------------

export async function renderList(root, app) {
  const state = h("select", { id: "f-state" }, h("option", { value: "" }, "any"), STATES.map((s) => h("option", {}, s)));
  const label = h("input", { type: "text", id: "f-label", placeholder: "exact label" });
  const experiment = h("input", { type: "text", id: "f-experiment", placeholder: "e.g. snoplus" });
  state.value = app.query.get("state") || "";
  label.value = app.query.get("label") || "";
  experiment.value = app.query.get("experiment") || "";
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div", { "aria-live": "polite" });
  const filters = h(
    "form.filters",
    {},
    h("div", {}, h("label", { for: "f-state" }, "State"), state),
    h("div", {}, h("label", { for: "f-experiment" }, "Experiment"), experiment),
    h("div", {}, h("label", { for: "f-label" }, "Label"), label),
    h("button", { type: "submit" }, "Filter"),
  );
  root.append(
    h("h1", {}, "Production requests"),
    h("div.actions", {}, h("a", { href: "#/requests/new" }, "File a new request")),
    filters,
    alert,
    holder,
  );
  const load = async () => {
    try {
      const page = await api.get("/api/requests", {
        state: state.value,
        label: label.value.trim(),
        experiment: experiment.value.trim(),
        limit: 100,
      });
      alert.textContent = "";
      fill(
        holder,
        table(
          page.items,
          [
            { key: "id", label: "Request", render: (r) => h("a", { href: `#/requests/${seg(r.id)}` }, r.id) },
            { key: "title", label: "Title" },
            { key: "experiment", label: "Experiment" },
            { key: "label", label: "Label" },
            { key: "state", label: "State", render: (r) => badge(r.state) },
            { key: "requester", label: "Requester" },
            { key: "updated_at", label: "Updated", render: (r) => when(r.updated_at) },
          ],
          `${page.total} request${page.total === 1 ? "" : "s"}`,
        ),
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
  return app.bus.subscribe((event) => {
    if (shortType(event.type).startsWith("request.") || shortType(event.type) === "campaign.created") load();
  });
}

// ---- one request --------------------------------------------------------------------------------------------

const ACTIONS = {
  submitted: { verb: "submit", text: "Submit for approval" },
  approved: { verb: "approve", text: "Approve", primary: true },
  rejected: { verb: "reject", text: "Reject", danger: true, needsNote: true },
  cancelled: { verb: "cancel", text: "Cancel request", danger: true },
};

function moduleText(entry) {
  return Object.entries(entry)
    .filter(([key]) => key !== "module")
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(" ");
}

export async function renderOne(root, app) {
  const [id] = app.params;
  const heading = h("h1", {}, `Request ${id}`);
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  const body = h("div");
  root.append(heading, alert, notice, body);
  const note = h("textarea", { rows: 2 });

  const act = async (verb, needsNote) => {
    alert.textContent = "";
    if (needsNote && !note.value.trim()) {
      alert.textContent = "Give a reason: the requester reads it.";
      note.focus();
      return;
    }
    try {
      const updated = await api.post(`/api/requests/${seg(id)}/${verb}`, { note: note.value.trim() });
      notice.textContent = `Request ${updated.id} is now ${updated.state}.`;
      note.value = "";
      draw(updated);
    } catch (error) {
      alert.textContent = error.message;
    }
  };

  const draw = (request) => {
    heading.textContent = `Request ${request.id}: ${request.title}`;
    const actions = (request.allowed || []).filter((state) => ACTIONS[state]);
    fill(
      body,
      h(
        "dl.facts",
        {},
        [
          ["State", badge(request.state)],
          ["Experiment", request.experiment],
          ["Kind", request.kind],
          ["Label", request.label],
          ["Software", request.rat_v],
          ["Conditions tag", request.ratdb_tag || "-"],
          ["Requester", request.requester],
          ["Contacts", (request.contacts || []).join(", ")],
          ["Site", request.site || "-"],
          ["Jobs", request.jobs ?? "-"],
          ["Campaign", request.campaign_id || "-"],
          ["Filed", when(request.created_at)],
        ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      request.state !== "draft" && request.jobs_json
        ? h("p", {}, h("a", { href: "#", onclick: (e) => download(e, request) }, "Download jobs.json"))
        : null,
      request.label
        ? h("p", {}, h("a", { href: `#/labels/${seg(request.label)}` }, `Label ${request.label}: progress`))
        : null,
      h("h2", {}, "Justification"),
      h("p", {}, request.justification || "-"),
      h("h2", {}, "Modules"),
      table(request.modules || [], [
        { key: "module", label: "Module" },
        { key: "spec", label: "What", render: moduleText },
      ]),
      actions.length
        ? h(
            "section.panel",
            { "aria-labelledby": "actions-h" },
            h("h2#actions-h", {}, "Actions"),
            field("note", "Note (kept in the history; required to reject)", note),
            h(
              "div.actions",
              {},
              actions.map((state) => {
                const a = ACTIONS[state];
                const cls = a.primary ? "button.primary" : a.danger ? "button.danger" : "button";
                return h(cls, { type: "button", onclick: () => act(a.verb, a.needsNote) }, a.text);
              }),
            ),
          )
        : null,
      h("h2", {}, "History"),
      table(request.history || [], [
        { key: "at", label: "When", render: (r) => when(r.at) },
        { key: "state", label: "State", render: (r) => badge(r.state) },
        { key: "by", label: "By" },
        { key: "note", label: "Note" },
      ]),
      request.notifications?.length
        ? [
            h("h2", {}, "Notifications"),
            table(request.notifications, [
              { key: "subject", label: "Mail" },
              { key: "recipients", label: "To", render: (r) => r.recipients.join(", ") },
              { key: "status", label: "Status", render: (r) => badge(r.status) },
              { key: "sent_at", label: "Sent", render: (r) => when(r.sent_at) },
            ]),
          ]
        : null,
    );
  };

  const load = async () => {
    try {
      draw(await api.get(`/api/requests/${seg(id)}`));
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
  return app.bus.subscribe((event) => {
    if (event.subject === id || event.data?.request_id === id) load();
  });
}

async function download(event, request) {
  event.preventDefault();
  const text = await api.text(`/api/requests/${seg(request.id)}/jobs.json`);
  const blob = new Blob([typeof text === "string" ? text : JSON.stringify(text)], { type: "application/json" });
  const link = h("a", { href: URL.createObjectURL(blob), download: `${request.label}.jobs.json` });
  document.body.append(link);
  link.click();
  link.remove();
}

// ---- the form -------------------------------------------------------------------------------------------------

function parseRuns(text) {
  const numbers = [];
  const ranges = [];
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const range = part.match(/^(\d+)-(\d+)$/);
    if (range) ranges.push({ first: Number(range[1]), last: Number(range[2]) });
    else if (/^\d+$/.test(part)) numbers.push(Number(part));
    else return null;
  }
  return { numbers, ranges };
}

class ModuleRow {
  constructor(index, modules, onRemove) {
    this.index = index;
    this.modules = modules;
    const p = `m${index}`;
    this.select = h("select", {}, Object.keys(modules).map((name) => h("option", {}, name)));
    this.mode = h("select");
    this.inputs = {
      t_run: h("input", { type: "number", min: "0", step: "any" }),
      t_format: h("select", {}, TIME_UNITS.map((u) => h("option", {}, u))),
      n_runs: h("input", { type: "number", min: "1", step: "1" }),
      n_ev: h("input", { type: "number", min: "1", step: "1" }),
      ev_per_run: h("input", { type: "number", min: "1", step: "1" }),
      runs: h("input", { type: "text", placeholder: "100151, 100152, 100200-100210" }),
      priority: h("input", { type: "number", step: "1" }),
    };
    this.inputs.t_format.value = "day";
    this.template = h("div");
    this.fields = {
      t_run: field(`${p}-t_run`, "Live time per job", this.inputs.t_run),
      t_format: field(`${p}-t_format`, "Unit", this.inputs.t_format),
      n_runs: field(`${p}-n_runs`, "Jobs (per run, for run-by-run)", this.inputs.n_runs),
      n_ev: field(`${p}-n_ev`, "Events (in total, or per run for run-by-run)", this.inputs.n_ev),
      ev_per_run: field(`${p}-ev_per_run`, "Events per job", this.inputs.ev_per_run, "Empty: the catalog's default."),
      runs: field(`${p}-run_numbers`, "Runs", this.inputs.runs, "Run numbers and ranges, e.g. 100151, 100200-100210."),
      priority: field(`${p}-priority`, "Priority", this.inputs.priority, "Larger first; empty: the request's."),
    };
    this.element = h(
      "fieldset",
      {},
      h("legend", {}, `Module ${index + 1}`),
      field(`${p}-module`, "Module", this.select),
      field(`${p}-mode`, "Event mode", this.mode),
      Object.values(this.fields),
      this.template,
      h("button.danger", { type: "button", onclick: () => onRemove(this) }, `Remove module ${index + 1}`),
    );
    this.select.addEventListener("change", () => this.moduleChanged());
    this.mode.addEventListener("change", () => this.modeChanged());
    this.moduleChanged();
  }

  spec() {
    return this.modules[this.select.value] || { event_modes: [], template_params: {} };
  }

  moduleChanged() {
    const spec = this.spec();
    fill(this.mode, spec.event_modes.map((m) => h("option", { value: m }, MODES[m] || m)));
    const p = `m${this.index}`;
    this.templateInputs = {};
    fill(
      this.template,
      Object.entries(spec.template_params || {}).map(([name, fallback]) => {
        const input = h("input", { type: "text", placeholder: fallback == null ? "required" : String(fallback) });
        this.templateInputs[name] = input;
        return field(`${p}-template-${name}`, `Template: ${name}`, input, fallback == null ? "Required." : "");
      }),
    );
    this.modeChanged();
  }

  modeChanged() {
    const mode = this.mode.value;
    const show = {
      t_run: mode === "by_time",
      t_format: mode === "by_time",
      n_runs: mode === "by_time" || mode === "run_by_run",
      n_ev: mode === "by_events" || mode === "run_by_run_events",
      ev_per_run: mode === "by_events" || mode === "run_by_run_events",
      runs: mode === "run_by_run" || mode === "run_by_run_events",
      priority: true,
    };
    for (const [key, wrapper] of Object.entries(this.fields)) wrapper.hidden = !show[key];
  }

  /** The module entry and the problems found before asking the API (same rules as its validation). */
  entry() {
    const p = `m${this.index}`;
    const errors = [];
    const entry = { module: this.select.value };
    const positive = (key, input, integer = true) => {
      if (input.value === "") return;
      const value = Number(input.value);
      if (!(value > 0) || (integer && !Number.isInteger(value))) {
        errors.push([`${p}-${key}`, `modules.${this.index}.${key}`, `must be a positive ${integer ? "integer" : "number"}`]);
      }
      entry[key] = value;
    };
    const mode = this.mode.value;
    if (mode === "by_time") {
      positive("t_run", this.inputs.t_run, false);
      entry.t_format = this.inputs.t_format.value;
      if (this.inputs.t_run.value === "") errors.push([`${p}-t_run`, `modules.${this.index}.t_run`, "required by time"]);
    }
    if (mode === "by_time" || mode === "run_by_run") positive("n_runs", this.inputs.n_runs);
    if (mode === "by_time" && this.inputs.n_runs.value === "") {
      errors.push([`${p}-n_runs`, `modules.${this.index}.n_runs`, "required by time"]);
    }
    if (mode === "by_events" || mode === "run_by_run_events") {
      positive("n_ev", this.inputs.n_ev);
      positive("ev_per_run", this.inputs.ev_per_run);
      if (this.inputs.n_ev.value === "") errors.push([`${p}-n_ev`, `modules.${this.index}.n_ev`, "required"]);
    }
    if (mode === "run_by_run" || mode === "run_by_run_events") {
      const runs = parseRuns(this.inputs.runs.value);
      if (!runs) errors.push([`${p}-run_numbers`, `modules.${this.index}.run_numbers`, "numbers and ranges only"]);
      else if (!runs.numbers.length && !runs.ranges.length) {
        errors.push([`${p}-run_numbers`, `modules.${this.index}.run_numbers`, "run-by-run needs runs"]);
      } else {
        if (runs.numbers.length) entry.run_numbers = runs.numbers;
        if (runs.ranges.length) entry.run_ranges = runs.ranges;
        if (runs.ranges.some((r) => r.last < r.first)) {
          errors.push([`${p}-run_numbers`, `modules.${this.index}.run_ranges`, "a range must not end below its start"]);
        }
      }
    }
    if (this.inputs.priority.value !== "") entry.priority = Number(this.inputs.priority.value);
    const template = {};
    for (const [name, input] of Object.entries(this.templateInputs)) {
      const fallback = this.spec().template_params[name];
      if (input.value.trim() !== "") {
        const number = Number(input.value);
        template[name] = input.value.trim() !== "" && !Number.isNaN(number) ? number : input.value.trim();
      } else if (fallback == null) {
        errors.push([`${p}-template-${name}`, `modules.${this.index}.template.${name}`, "required by this module"]);
      }
    }
    if (Object.keys(template).length) entry.template = template;
    return { entry, errors };
  }

  /** Field ids by the API's field names, to place its errors. */
  fieldIds() {
    const p = `m${this.index}`;
    const ids = { [`modules.${this.index}`]: `${p}-module`, [`modules.${this.index}.module`]: `${p}-module` };
    for (const key of ["t_run", "t_format", "n_runs", "n_ev", "ev_per_run", "run_numbers", "priority"]) {
      ids[`modules.${this.index}.${key}`] = `${p}-${key}`;
    }
    ids[`modules.${this.index}.run_ranges`] = `${p}-run_numbers`;
    for (const name of Object.keys(this.templateInputs)) ids[`modules.${this.index}.template.${name}`] = `${p}-template-${name}`;
    ids[`modules.${this.index}.template`] = `${p}-module`;
    return ids;
  }
}

export async function renderForm(root, app) {
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  root.append(h("h1", {}, "File a production request"), alert);
  let catalog;
  try {
    catalog = await api.get("/api/catalog");
  } catch (error) {
    alert.textContent = error.message;
    return;
  }
  const experiments = catalog.map((e) => e.experiment);
  const c = {
    experiment: h("select", {}, experiments.map((e) => h("option", {}, e))),
    title: h("input", { type: "text", required: true, maxlength: "300" }),
    kind: h("select", {}, h("option", {}, "production"), h("option", {}, "processing")),
    rat_v: h("input", { type: "text", required: true, placeholder: "e.g. 7.0.15" }),
    label: h("input", { type: "text", required: true, pattern: LABEL.source, placeholder: "e.g. 2026-11_WaterBi214_v1" }),
    contacts: h("input", { type: "text", required: true, placeholder: "you@example.org, other@example.org" }),
    site: h("input", { type: "text", placeholder: "optional" }),
    ratdb_tag: h("input", { type: "text", placeholder: "optional, for large requests" }),
    priority: h("input", { type: "number", step: "1" }),
    justification: h("textarea", { rows: 4 }),
  };
  if (app.me?.experiments?.length && !app.me.experiments.includes("*")) {
    const mine = experiments.filter((e) => app.me.experiments.includes(e));
    if (mine.length) c.experiment.value = mine[0];
  }
  const modulesBox = h("div");
  const rows = [];
  let modules = {};
  let latest = 0;
  const loadModules = async () => {
    const mine = ++latest;
    const list = await api.get(`/api/catalog/${seg(c.experiment.value)}/modules`);
    if (mine !== latest) return; // the experiment or kind changed again meanwhile: a later call fills the form
    modules = Object.fromEntries(list.filter((m) => (m.kinds || ["production"]).includes(c.kind.value)).map((m) => [m.name, m]));
    rows.length = 0;
    fill(modulesBox);
    addModule();
  };
  const renumber = () => {
    const entries = rows.map((row) => ({ mode: row.mode.value, module: row.select.value }));
    rows.length = 0;
    fill(modulesBox);
    for (const saved of entries) {
      const row = addModule();
      row.select.value = saved.module;
      row.moduleChanged();
      row.mode.value = saved.mode;
      row.modeChanged();
    }
  };
  const addModule = () => {
    const row = new ModuleRow(rows.length, modules, (gone) => {
      if (rows.length === 1) return;
      rows.splice(rows.indexOf(gone), 1);
      renumber();
    });
    rows.push(row);
    modulesBox.append(row.element);
    return row;
  };
  const submitNow = h("input", { type: "checkbox", id: "submit-now", checked: true });
  const preview = h("div", { "aria-live": "polite" });
  const form = h(
    "form.panel",
    { novalidate: true },
    field("experiment", "Experiment", c.experiment),
    field("title", "Title", c.title),
    field("kind", "Kind", c.kind, "production: Monte Carlo; processing: of detector data."),
    field("rat_v", "Software version", c.rat_v),
    field("label", "Production label", c.label, "3 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit; unique."),
    field("contacts", "Contacts", c.contacts, "E-mail addresses, separated by commas; they receive jobs.json."),
    field("site", "Site preference", c.site),
    field("ratdb_tag", "Frozen conditions tag", c.ratdb_tag),
    field("priority", "Priority", c.priority, "Default priority of the modules; larger first."),
    field("justification", "Justification", c.justification),
    h("h2", {}, "Modules"),
    modulesBox,
    h("div.actions", {}, h("button", { type: "button", onclick: () => addModule() }, "Add a module")),
    h("label.inline", { for: "submit-now" }, submitNow, "Submit for approval at once (otherwise it stays a draft)"),
    h(
      "div.actions",
      {},
      h("button", { type: "button", id: "preview-button", onclick: () => send(true) }, "Preview jobs"),
      h("button.primary", { type: "submit" }, "File request"),
    ),
    notice,
    preview,
  );
  const fieldIds = () => Object.assign({ experiment: "experiment", title: "title", kind: "kind", rat_v: "rat_v", label: "label", contacts: "contacts", site: "site", ratdb_tag: "ratdb_tag", priority: "priority", justification: "justification", modules: "m0-module" }, ...rows.map((r) => r.fieldIds()));

  const collect = () => {
    const errors = [];
    const contacts = c.contacts.value.split(/[\s,;]+/).filter(Boolean);
    if (!c.title.value.trim()) errors.push(["title", "title", "required"]);
    if (!c.rat_v.value.trim()) errors.push(["rat_v", "rat_v", "required"]);
    if (!LABEL.test(c.label.value.trim())) errors.push(["label", "label", `must match ${LABEL.source}`]);
    if (!contacts.length) errors.push(["contacts", "contacts", "at least one e-mail address"]);
    contacts.forEach((mail, i) => EMAIL.test(mail) || errors.push(["contacts", `contacts.${i}`, `${mail} is not an e-mail address`]));
    const body = {
      experiment: c.experiment.value,
      title: c.title.value.trim(),
      kind: c.kind.value,
      rat_v: c.rat_v.value.trim(),
      label: c.label.value.trim(),
      contacts,
      justification: c.justification.value.trim(),
      modules: [],
    };
    if (c.site.value.trim()) body.site = c.site.value.trim();
    if (c.ratdb_tag.value.trim()) body.ratdb_tag = c.ratdb_tag.value.trim();
    if (c.priority.value !== "") body.priority = Number(c.priority.value);
    for (const row of rows) {
      const { entry, errors: rowErrors } = row.entry();
      body.modules.push(entry);
      errors.push(...rowErrors);
    }
    return { body, errors };
  };

  const send = async (dryRun) => {
    alert.textContent = "";
    notice.textContent = "";
    fill(preview);
    const { body, errors } = collect();
    const problem = { errors: errors.map(([, name, message]) => ({ field: name, message })) };
    showFieldErrors(form, problem, fieldIds());
    if (errors.length) {
      alert.textContent = `${errors.length} field${errors.length === 1 ? "" : "s"} to correct: ${errors.map(([, n, m]) => `${n}: ${m}`).join("; ")}`;
      form.querySelector("[aria-invalid='true']")?.focus();
      return;
    }
    try {
      if (dryRun) {
        const result = await api.post("/api/requests/preview", body);
        fill(
          preview,
          h("p", {}, `This request makes ${result.jobs} job${result.jobs === 1 ? "" : "s"}.`),
          table(result.modules, [
            { key: "module", label: "Module" },
            { key: "mode", label: "Mode" },
            { key: "jobs", label: "Jobs", num: true },
            { key: "runs", label: "Runs", num: true },
          ]),
        );
        return;
      }
      let created = await api.post("/api/requests", body);
      if (submitNow.checked) created = await api.post(`/api/requests/${seg(created.id)}/submit`, { note: "" });
      app.navigate(`/requests/${seg(created.id)}`);
    } catch (error) {
      if (error instanceof ApiError) {
        const unmatched = showFieldErrors(form, error.problem, fieldIds());
        alert.textContent = [error.message, ...unmatched].join(" — ");
        form.querySelector("[aria-invalid='true']")?.focus();
      } else {
        alert.textContent = String(error);
      }
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(false);
  });
  c.experiment.addEventListener("change", loadModules);
  c.kind.addEventListener("change", loadModules);
  root.append(form);
  try {
    await loadModules();
  } catch (error) {
    alert.textContent = error.message;
  }
}
