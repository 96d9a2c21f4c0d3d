// "Where did this file come from?": one call to /api/provenance by storage element URL, file name + adler32, job
// id or path in a cycle, and the chain it answers drawn as a tree (the same content as `prodflow provenance`).

import { api, seg } from "../api.js";
import { badge, fill, h, when } from "../dom.js";

/** The ways to ask, each a group of form fields sent as the API's query parameters. */
const WAYS = [
  { id: "url", legend: "A storage element URL", fields: [["url", "URL", "root://se.example.org//snoplus/mc/…/out.root"]] },
  {
    id: "checksum",
    legend: "Or a file name and its adler32",
    fields: [
      ["name", "File name", "Tl208_r300000_c3_p1.root"],
      ["adler32", "adler32 (8 hex digits)", "0a1b2c3d"],
    ],
  },
  { id: "job", legend: "Or a job id", fields: [["job", "Job id", ""]] },
  {
    id: "path",
    legend: "Or a path in a cycle",
    fields: [
      ["path", "Path", "generated/tier/hit/…/x-tier_hit.lh5"],
      ["cycle", "Cycle (optional)", "ref-v2"],
    ],
  },
];
const KEYS = WAYS.flatMap((way) => way.fields.map(([key]) => key));

/** A line of facts: the parts that have a value, joined by " · ". */
function facts(...parts) {
  const shown = parts.filter((part) => part !== null && part !== undefined && part !== "" && part !== false);
  return shown.flatMap((part, index) => (index ? [" · ", part] : [part]));
}

function pair(name, value) {
  return value === null || value === undefined || value === "" ? null : `${name} ${value}`;
}

const node = (line, children = []) => ({ line, children });

/** A file's facts (not yet joined): where it is (for the asked file), size, adler32, when it was recorded. */
function fileParts(file, withWhere) {
  return [
    withWhere ? ["file ", h("code", {}, file.url || file.path || file.name)] : null,
    pair("size", file.size),
    pair("adler32", file.adler32),
    withWhere ? pair("recorded", file.recorded_at && when(file.recorded_at)) : null,
  ];
}

// --- a SNO+ job output: file → job (attempts, command, software) → campaign → request ---------------------------

function attemptNode(attempt, wrote) {
  const backend = [attempt.backend, attempt.backend_id].filter(Boolean).join(" ");
  return node(
    facts(
      `attempt ${attempt.attempt}`,
      badge(attempt.outcome),
      attempt.attempt === wrote ? h("strong", {}, "wrote this file") : null,
      pair("site", attempt.site),
      pair("backend", backend),
      pair("exit", attempt.exit_code),
      pair("submitted", attempt.submitted_at && when(attempt.submitted_at)),
      pair("started", attempt.started_at && when(attempt.started_at)),
      pair("finished", attempt.finished_at && when(attempt.finished_at)),
      attempt.reason ? `reason: ${attempt.reason}` : null,
    ),
  );
}

function softwareNode(software) {
  const entries = Object.entries(software || {});
  if (!entries.length) return node(["software: not recorded"]);
  return node(
    ["software"],
    entries.map(([key, value]) => node([`${key}: `, h("code", {}, typeof value === "string" ? value : JSON.stringify(value))])),
  );
}

function requestNode(request) {
  if (!request) return node(["request: none (a jobs.json uploaded without a request)"]);
  const approval = request.approved_by
    ? `approved by ${request.approved_by}${request.approved_at ? ` at ${when(request.approved_at)}` : ""}`
    : "not approved";
  const history = (request.history || []).map((change) =>
    node([`${when(change.at)} `, badge(change.state), ` by ${change.by}`, change.note ? ` · why: ${change.note}` : null]),
  );
  return node(
    facts(
      ["request ", h("a", { href: `#/requests/${seg(request.id)}` }, request.id), ` “${request.title}”`],
      pair("requester", request.requester),
      ["state ", badge(request.state)],
      approval,
    ),
    [
      node(["jobs.json sha256 ", h("code", {}, request.jobs_json_sha256 || "not recorded")]),
      node(["history"], history.length ? history : [node(["no state change recorded"])]),
    ],
  );
}

function campaignNode(campaign, request) {
  if (!campaign) return node(["campaign: none (a job filed without a campaign)"], [requestNode(request)]);
  return node(
    facts(
      ["campaign ", h("a", { href: `#/campaigns/${seg(campaign.id)}` }, campaign.id)],
      pair("site", campaign.site),
      pair("pass", campaign.pass),
      pair("kind", campaign.kind),
      pair("from campaign", campaign.parent_campaign),
      `created by ${campaign.created_by} at ${when(campaign.created_at)}`,
    ),
    [requestNode(request)],
  );
}

function jobOutputNodes(record) {
  const { job, attempt: wrote } = record;
  const attempts = (job.attempts || []).map((a) => attemptNode(a, wrote));
  if (!(job.attempts || []).some((a) => a.attempt === wrote)) attempts.push(node([`attempt ${wrote} wrote this file (not in the job's history)`]));
  const jobLine = facts(
    ["job ", h("a", { href: `#/jobs/${seg(job.id)}` }, job.id)],
    ["label ", h("a", { href: `#/labels/${seg(job.label)}` }, job.label)],
    pair("module", job.module),
    pair("run", job.run),
    pair("chunk", job.chunk),
    pair("pass", job.pass),
    pair("seed", job.seed),
    pair("events", job.events),
    ["status ", badge(job.status)],
    pair("parent", job.parent),
  );
  return [
    node(jobLine, [
      ...attempts,
      node(job.command ? ["command: ", h("code", {}, job.command)] : ["command: not recorded"]),
      softwareNode(job.software),
      campaignNode(record.campaign, record.request),
    ]),
  ];
}

// --- a LEGEND cycle file: its cycle, and the files it was made from down to the raw ones -----------------------

/** The Snakemake step's facts (not yet joined): rule, run, jobid, wildcards, when it finished. */
function stepParts(step) {
  if (!step) return ["no recorded step made it"];
  const wildcards = Object.entries(step.wildcards || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return [
    pair("rule", step.rule),
    pair("run", step.run_id),
    pair("jobid", step.jobid),
    wildcards ? `wildcards ${wildcards}` : null,
    pair("finished", step.finished_at && when(step.finished_at)),
  ];
}

function dagNode(path, byPath, seen) {
  const found = byPath.get(path);
  if (!found) return node(facts(h("code", {}, path), "no record of this file"));
  if (seen.has(path)) return node(facts(h("code", {}, path), h("em", {}, "shown above")));
  seen.add(path);
  return node(
    facts(h("code", {}, path), ...stepParts(found.made_by), ...fileParts(found.file, false)),
    (found.inputs || []).map((input) => dagNode(input, byPath, seen)),
  );
}

function cycleFileNodes(record) {
  const { cycle, files } = record;
  const pins = (cycle.pins || []).map((pin) =>
    node(facts(`${pin.name} (${pin.kind})`, pin.version, pair("commit", pin.commit), pin.source ? h("code", {}, pin.source) : null)),
  );
  const byPath = new Map((files || []).map((f) => [f.file.path || f.file.name, f]));
  const first = files && files[0];
  return [
    node(
      facts(["cycle ", h("a", { href: `#/cycles/${seg(cycle.name)}` }, cycle.name)], pair("experiment", cycle.experiment), ["config.json sha256 ", h("code", {}, cycle.config_sha256)]),
      [node(["software pins"], pins.length ? pins : [node(["none recorded"])])],
    ),
    node(["files (each made from the files under it)"], first ? [dagNode(first.file.path || first.file.name, byPath, new Set())] : []),
  ];
}

/** The chain of one file as a tree of {line, children}: a pure function of the API's Provenance answer. */
export function chainTree(provenance) {
  let children = [node([`no ${provenance.kind} record in the answer`])];
  if (provenance.kind === "job-output" && provenance.job_output) children = jobOutputNodes(provenance.job_output);
  if (provenance.kind === "cycle-file" && provenance.cycle_file) children = cycleFileNodes(provenance.cycle_file);
  return node(facts(...fileParts(provenance.file, true)), children);
}

/** A tree as nested lists (every value goes in as text). */
function treeList(nodes) {
  return h("ul", {}, nodes.map((n) => h("li", {}, h("span.line", {}, n.line), n.children.length ? treeList(n.children) : null)));
}

// --- the page ---------------------------------------------------------------------------------------------------

export async function render(root, app) {
  const controls = {};
  for (const key of KEYS) {
    const placeholder = WAYS.flatMap((w) => w.fields).find(([k]) => k === key)[2];
    controls[key] = h("input", { type: "text", id: `p-${key}`, placeholder: placeholder || null, spellcheck: "false" });
    controls[key].value = app.query.get(key) || "";
  }
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div", { "aria-live": "polite" });
  const form = h(
    "form.panel",
    { novalidate: true },
    WAYS.map((way) =>
      h(
        "fieldset",
        {},
        h("legend", {}, way.legend),
        h("div.filters", {}, way.fields.map(([key, label]) => h("div", {}, h("label", { for: `p-${key}` }, label), controls[key]))),
      ),
    ),
    h("div.actions", {}, h("button.primary", { type: "submit" }, "Trace"), h("button", { type: "reset" }, "Clear")),
  );
  root.append(
    h("h1", {}, "Where did this file come from?"),
    h("p.muted", {}, "Fill one of the ways below. A SNO+ output traces to its job, attempts, campaign and request; a LEGEND cycle file to its cycle, software pins and the files it was made from."),
    form,
    alert,
    holder,
  );

  const asked = () => {
    const filled = WAYS.filter((way) => way.fields.some(([key]) => key !== "cycle" && controls[key].value.trim()));
    if (filled.length !== 1) return { error: filled.length ? `Fill only one way to ask (now: ${filled.map((w) => w.legend.replace(/^Or /, "")).join("; ")}).` : "Fill one way to ask." };
    const params = Object.fromEntries(filled[0].fields.map(([key]) => [key, controls[key].value.trim()]).filter(([, v]) => v));
    if (filled[0].id === "checksum" && !(params.name && params.adler32)) return { error: "Give both the file name and its adler32." };
    return { params };
  };

  const load = async (params) => {
    alert.textContent = "";
    fill(holder, h("p.muted", {}, "Tracing…"));
    try {
      const provenance = await api.get("/api/provenance", params);
      fill(holder, h("h2", {}, `Chain of ${provenance.file.name}`), h("div.tree", {}, treeList([chainTree(provenance)])));
    } catch (error) {
      fill(holder);
      alert.textContent = error.message;
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { params, error } = asked();
    if (error) {
      alert.textContent = error;
      return;
    }
    history.replaceState(null, "", `#/provenance?${new URLSearchParams(params)}`);
    load(params);
  });
  form.addEventListener("reset", () => {
    alert.textContent = "";
    fill(holder);
    history.replaceState(null, "", "#/provenance");
  });
  const { params } = asked();
  if (params) await load(params);
}
