// Labels: every label with a progress bar; one label with counts per status and module, a plot of completed
// jobs over time, and its .exactly. Live: refreshed on job and label events.

import { api, seg } from "../api.js";
import { badge, coalesce, fill, h, table, when } from "../dom.js";
import { shortType } from "../stream.js";

const PLOT_JOBS = 5000;
const PAGE = 100;

function progress(counts, jobs, name) {
  const done = counts?.completed || 0;
  const pct = jobs ? Math.floor((100 * done) / jobs) : 0;
  return h(
    "span",
    {},
    h("progress", { max: jobs || 1, value: done, "aria-label": `${name}: ${done} of ${jobs} jobs completed` }),
    ` ${pct} % `,
    h("span.muted", {}, `(${done}/${jobs})`),
  );
}

function countsText(counts) {
  return Object.entries(counts || {})
    .map(([status, n]) => `${status} ${n}`)
    .join(", ");
}

export async function renderList(root, app) {
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div");
  const more = h("button", { type: "button", hidden: true }, "More labels");
  root.append(h("h1", {}, "Labels"), alert, holder, h("div.actions", {}, more));
  let cursor = null;
  let shown = [];
  // A page of labels at a time; a refresh reads again as many as are shown (up to a page of 1000).
  const load = async (next) => {
    try {
      const limit = next ? PAGE : Math.min(1000, Math.max(PAGE, shown.length));
      const page = await api.get("/api/labels", { limit, cursor: next });
      alert.textContent = "";
      cursor = page.next;
      more.hidden = !cursor;
      shown = next ? [...shown, ...page.items] : page.items;
      fill(
        holder,
        table(
          shown,
          [
            { key: "label", label: "Label", render: (r) => h("a", { href: `#/labels/${seg(r.label)}` }, r.label) },
            { key: "experiment", label: "Experiment" },
            { key: "database", label: "Database" },
            { key: "progress", label: "Completed", render: (r) => progress(r.counts, r.jobs, r.label) },
            { key: "counts", label: "Jobs by status", render: (r) => countsText(r.counts) },
            { key: "complete", label: "Final", render: (r) => (r.complete ? "yes" : "no") },
          ],
          `${shown.length} label${shown.length === 1 ? "" : "s"}${cursor ? " shown" : ""}`,
        ),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  more.addEventListener("click", () => load(cursor));
  await load(null);
  const reload = coalesce(() => load(null), 500);
  return app.bus.subscribe((event) => /^(job|jobs|label|campaign)\./.test(shortType(event.type)) && reload());
}

/** An SVG step plot of cumulative completed jobs over time; points: sorted Date values. */
export function plot(points, total, title) {
  const W = 720;
  const H = 240;
  const P = { l: 48, r: 12, t: 16, b: 32 };
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img", "aria-labelledby": "plot-title" });
  svg.append(el("title", { id: "plot-title" }, title));
  const t0 = points.length ? points[0].getTime() : Date.now();
  const t1 = Math.max(points.length ? points[points.length - 1].getTime() : t0, t0 + 1000);
  const yMax = Math.max(total, points.length, 1);
  const x = (t) => P.l + ((t - t0) / (t1 - t0)) * (W - P.l - P.r);
  const y = (n) => H - P.b - (n / yMax) * (H - P.t - P.b);
  svg.append(el("line", { class: "axis", x1: P.l, y1: H - P.b, x2: W - P.r, y2: H - P.b }));
  svg.append(el("line", { class: "axis", x1: P.l, y1: P.t, x2: P.l, y2: H - P.b }));
  svg.append(el("text", { x: 4, y: y(yMax) + 4 }, String(yMax)));
  svg.append(el("text", { x: 4, y: y(0) }, "0"));
  svg.append(el("text", { x: P.l, y: H - 8 }, when(new Date(t0).toISOString())));
  svg.append(el("text", { x: W - P.r, y: H - 8, "text-anchor": "end" }, when(new Date(t1).toISOString())));
  let d = `M ${x(t0)} ${y(0)}`;
  points.forEach((p, i) => {
    d += ` L ${x(p.getTime())} ${y(i)} L ${x(p.getTime())} ${y(i + 1)}`;
  });
  svg.append(el("path", { class: "line", d }));
  return svg;
}

async function completionTimes(label) {
  const times = [];
  let cursor = null;
  do {
    const page = await api.get("/api/jobs", { label, status: "completed", limit: 1000, cursor });
    for (const job of page.items) if (job.updated_at) times.push(new Date(job.updated_at));
    cursor = page.next;
  } while (cursor && times.length < PLOT_JOBS);
  return times.sort((a, b) => a - b);
}

export async function renderOne(root, app) {
  const [label] = app.params;
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  const head = h("div", { "aria-live": "polite" });
  const actions = h("div.actions");
  const modules = h("div");
  const chart = h("figure");
  const exactly = h("pre.log", { hidden: true, tabindex: "0", "aria-label": ".exactly" });
  const showExactly = async () => {
    try {
      exactly.textContent = await api.text(`/api/labels/${seg(label)}/exactly`);
    } catch {
      exactly.textContent = await api.text(`/api/grab/${seg(label)}/exactly`);
    }
    exactly.hidden = false;
  };
  const saveManifest = async () => {
    try {
      const manifest = await api.get(`/api/grab/${seg(label)}`);
      const blob = new Blob([JSON.stringify(manifest, null, 2)], { type: "application/json" });
      const link = h("a", { href: URL.createObjectURL(blob), download: `${label}.manifest.json` });
      document.body.append(link);
      link.click();
      link.remove();
      notice.textContent = `Manifest of ${manifest.count} files (${manifest.total_size} bytes) saved.`;
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  root.append(
    h("h1", {}, `Label ${label}`),
    alert,
    notice,
    head,
    actions,
    h("h2", {}, "Completed jobs over time"),
    chart,
    h("h2", {}, "By module"),
    modules,
    h(
      "p",
      {},
      h("a", { href: `#/jobs?label=${seg(label)}` }, "Jobs of this label"),
      " · ",
      h("a", { href: `#/campaigns?label=${seg(label)}` }, "Campaigns"),
      " · ",
      h("button.link", { type: "button", onclick: showExactly }, "Show .exactly"),
      " · ",
      h("button.link", { type: "button", onclick: saveManifest }, "Save the grab manifest"),
      h("span.muted", {}, ` (download its files with 'prodflow grab ${label} --to DIR')`),
    ),
    exactly,
  );
  let times = [];
  let summary = null;
  const operate = async (what, database, body) => {
    alert.textContent = "";
    try {
      const done = await api.post(`/api/campaigns/by-label/${seg(label)}/${what}`, { database, ...body });
      const extra = done.campaign ? ` as campaign ${done.campaign} (pass ${done.pass})` : "";
      notice.textContent = `${done.job_ids.length} job${done.job_ids.length === 1 ? "" : "s"} ${what === "cancel" ? "cancelled" : "resubmitted"}${extra}.`;
      load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const drawActions = () => {
    const buttons = [];
    for (const [database, part] of Object.entries(summary.databases || {})) {
      const counts = part.counts || {};
      const failed = (counts.failed || 0) + (counts.partFail || 0);
      const open = Object.entries(counts).filter(([s]) => !["completed", "failed", "cancelled", "partFail"].includes(s)).reduce((n, [, v]) => n + v, 0);
      const where = Object.keys(summary.databases).length > 1 ? ` (${database})` : "";
      if (failed) {
        buttons.push(h("button", { type: "button", onclick: () => operate("resubmit", database, { mode: "next_pass", reason: "from the dashboard" }) }, `Resubmit ${failed} failed as a new pass${where}`));
        buttons.push(h("button", { type: "button", onclick: () => operate("resubmit", database, { mode: "next_attempt", reason: "from the dashboard" }) }, `Retry ${failed} failed in the same pass${where}`));
      }
      if (open) {
        buttons.push(h("button.danger", { type: "button", onclick: () => window.confirm(`Cancel ${open} unfinished jobs of ${label}?`) && operate("cancel", database, { reason: "from the dashboard" }) }, `Cancel ${open} unfinished${where}`));
      }
    }
    fill(actions, buttons);
  };
  const drawChart = () => {
    const title = `Completed jobs of ${label} over time: ${times.length} of ${summary?.jobs ?? "?"}`;
    fill(chart, plot(times, summary?.jobs || 0, title), h("figcaption.muted", {}, title));
  };
  const load = async () => {
    try {
      summary = await api.get(`/api/labels/${seg(label)}/summary`);
      alert.textContent = "";
      fill(
        head,
        h("p", {}, progress(summary.counts, summary.jobs, label), " ", summary.complete ? badge("completed") : badge("running")),
        h(
          "dl.facts",
          {},
          [
            ["Experiment", summary.experiment],
            ["Jobs", summary.jobs],
            ["Final", summary.final],
            ["By status", countsText(summary.counts)],
            ["Events done / requested", `${summary.events_done} / ${summary.events_requested}`],
          ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
        ),
      );
      fill(
        modules,
        table(
          Object.entries(summary.modules || {}).map(([name, m]) => ({ name, ...m })),
          [
            { key: "name", label: "Module" },
            { key: "progress", label: "Completed", render: (m) => progress(m.counts, m.jobs, m.name) },
            { key: "counts", label: "By status", render: (m) => countsText(m.counts) },
            { key: "events", label: "Events done / requested", render: (m) => `${m.events_done} / ${m.events_requested}` },
          ],
        ),
      );
      drawActions();
      times = await completionTimes(label);
      drawChart();
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
  const reload = coalesce(load, 400);
  let trailing = null;
  const unsubscribe = app.bus.subscribe((event) => {
    const ours = event.data?.label === label || String(event.subject || "").startsWith(`job:${label}:`);
    if (!ours || !/^(job|jobs|label|output)\./.test(shortType(event.type))) return;
    reload();
    // The kept counts follow the job feed, which may trail the events a moment: look again after the last one.
    clearTimeout(trailing);
    trailing = setTimeout(reload, 2500);
  });
  return () => {
    clearTimeout(trailing);
    unsubscribe();
  };
}

