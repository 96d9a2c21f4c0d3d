// Production cycles: the list and a creation form; one cycle with its software, its runs (start, cancel),
// invalidation (dry run first) and the live log of a run, streamed as SSE and resumed by byte offset.

import { api, seg, token } from "../api.js";
import { badge, coalesce, field, fill, h, showFieldErrors, table, when } from "../dom.js";
import { SseParser, shortType } from "../stream.js";

const OPTION_HINT = "Comma-separated Snakemake options from the allowed list, e.g. keep-going, rerun-incomplete, dry-run.";

export async function renderList(root, app) {
  const alert = h("div.alert", { role: "alert" });
  const holder = h("div");
  const c = {
    name: h("input", { type: "text", required: true, placeholder: "e.g. ref-v2.0.0" }),
    dataflow: h("input", { type: "text", required: true, placeholder: "git URL" }),
    dataflow_ref: h("input", { type: "text", value: "main" }),
    metadata: h("input", { type: "text", required: true, placeholder: "git URL" }),
    metadata_ref: h("input", { type: "text", value: "main" }),
  };
  const formAlert = h("div.alert", { role: "alert" });
  const form = h(
    "form.panel",
    { novalidate: true },
    h("h2", {}, "New cycle"),
    field("c-name", "Name", c.name, "The cycle's folder under the production root."),
    field("c-dataflow", "Dataflow repository", c.dataflow),
    field("c-dataflow-ref", "Dataflow ref", c.dataflow_ref),
    field("c-metadata", "Metadata repository", c.metadata),
    field("c-metadata-ref", "Metadata ref", c.metadata_ref),
    h("div.actions", {}, h("button.primary", { type: "submit" }, "Create cycle")),
    formAlert,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formAlert.textContent = "";
    try {
      const cycle = await api.post("/api/cycles", {
        name: c.name.value.trim(),
        dataflow: { url: c.dataflow.value.trim(), ref: c.dataflow_ref.value.trim() || "main" },
        metadata: { url: c.metadata.value.trim(), ref: c.metadata_ref.value.trim() || "main" },
      });
      app.navigate(`/cycles/${seg(cycle.name)}`);
    } catch (error) {
      const ids = { name: "c-name", dataflow: "c-dataflow", "dataflow.url": "c-dataflow", "dataflow.ref": "c-dataflow-ref", metadata: "c-metadata", "metadata.url": "c-metadata", "metadata.ref": "c-metadata-ref" };
      const rest = showFieldErrors(form, error.problem, ids);
      formAlert.textContent = [error.message, ...rest].join(" — ");
    }
  });
  root.append(h("h1", {}, "Production cycles"), alert, holder, form);
  const load = async () => {
    try {
      const cycles = await api.get("/api/cycles");
      fill(
        holder,
        table(cycles, [
          { key: "name", label: "Cycle", render: (r) => h("a", { href: `#/cycles/${seg(r.name)}` }, r.name) },
          { key: "experiment", label: "Experiment" },
          { key: "state", label: "State", render: (r) => badge(r.state) },
          { key: "software", label: "Software", render: (r) => badge(r.software?.state || "-") },
          { key: "active_run", label: "Active run" },
          { key: "queued_runs", label: "Queued", num: true },
          { key: "created_at", label: "Created", render: (r) => when(r.created_at) },
        ]),
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
  return app.bus.subscribe((event) => shortType(event.type).startsWith("cycle.") && load());
}

/** Stream a run's log into `pre` (SSE from byte `offset`); returns a stop function. */
export function followLog(cycle, rid, pre, status) {
  const controller = new AbortController();
  let offset = "0";
  let stopped = false;
  const run = async () => {
    while (!stopped) {
      try {
        const response = await fetch(`/api/cycles/${seg(cycle)}/runs/${seg(rid)}/log?follow=true`, {
          headers: { Accept: "text/event-stream", Authorization: `Bearer ${token.get()}`, "Last-Event-ID": offset },
          signal: controller.signal,
        });
        if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
        status.textContent = "following the log…";
        let ended = null;
        const parser = new SseParser((message) => {
          if (message.id) offset = message.id;
          if (message.event === "end") {
            ended = JSON.parse(message.data || "{}").state || "ended";
            return;
          }
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.append(`${message.data}\n`);
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
        if (ended) {
          status.textContent = `the run is ${ended}; log complete`;
          return;
        }
      } catch (error) {
        if (stopped) return;
        status.textContent = `log stream interrupted (${error.message}); resuming…`;
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  };
  run();
  return () => {
    stopped = true;
    controller.abort();
  };
}

export async function renderOne(root, app) {
  const [name] = app.params;
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  const facts = h("div");
  const runs = h("div", { "aria-live": "polite" });
  const logTitle = h("h2#log-h", {}, "Log");
  const logStatus = h("p.muted", { role: "status" });
  const log = h("pre.log", { tabindex: "0", "aria-labelledby": "log-h" });
  let stopLog = null;
  const selected = app.query.get("run");

  const showLog = (rid) => {
    if (stopLog) stopLog();
    log.textContent = "";
    logTitle.textContent = `Log of ${rid}`;
    stopLog = followLog(name, rid, log, logStatus);
  };

  const targets = h("input", { type: "text", placeholder: "e.g. all-l200-p03-r001-phy-dsp.gen" });
  const cores = h("input", { type: "number", min: "1", value: "1" });
  const options = h("input", { type: "text", placeholder: "keep-going" });
  const runForm = h(
    "form.panel",
    { novalidate: true },
    h("h2", {}, "Start a run"),
    field("r-targets", "Targets", targets, "Snakemake targets, separated by spaces."),
    field("r-cores", "Cores", cores),
    field("r-options", "Options", options, OPTION_HINT),
    h("div.actions", {}, h("button.primary", { type: "submit" }, "Run")),
  );
  runForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    try {
      const run = await api.post(`/api/cycles/${seg(name)}/runs`, {
        targets: targets.value.split(/\s+/).filter(Boolean),
        cores: Number(cores.value || 1),
        options: options.value.split(/[\s,]+/).filter(Boolean),
      });
      notice.textContent = `Run ${run.id} queued.`;
      showLog(run.id);
      load();
    } catch (error) {
      const rest = showFieldErrors(runForm, error.problem, { targets: "r-targets", cores: "r-cores", options: "r-options" });
      alert.textContent = [error.message, ...rest].join(" — ");
    }
  });

  const invTarget = h("input", { type: "text", placeholder: "e.g. all-l200-p03-r001-phy-dsp.gen" });
  const invResult = h("div", { "aria-live": "polite" });
  const invalidate = async (dryRun) => {
    alert.textContent = "";
    try {
      const result = await api.post(`/api/cycles/${seg(name)}/invalidate`, { target: invTarget.value.trim(), dry_run: dryRun });
      fill(
        invResult,
        h("p", {}, `${dryRun ? "Would remove" : "Removed"} ${result.count} file${result.count === 1 ? "" : "s"} (${result.bytes} bytes) of tiers ${result.tiers.join(", ")}.`),
        table(result.files.slice(0, 200), [{ key: "path", label: "File" }, { key: "size", label: "Bytes", num: true }]),
        dryRun && result.count
          ? h("button.danger", { type: "button", onclick: () => invalidate(false) }, `Remove these ${result.count} files`)
          : null,
      );
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  const invForm = h(
    "form.panel",
    { novalidate: true },
    h("h2", {}, "Invalidate for reprocessing"),
    field("i-target", "Target", invTarget, "A .gen target; a dry run shows what would be removed first."),
    h("div.actions", {}, h("button", { type: "submit" }, "Show what would be removed")),
    invResult,
  );
  invForm.addEventListener("submit", (event) => {
    event.preventDefault();
    invalidate(true);
  });

  const configView = h("pre.log", { tabindex: "0", "aria-label": "config.json" });
  const patchText = h("textarea", { rows: 4, spellcheck: "false", placeholder: '{"setups": {"l200": {"pkg_versions": {"pygama": "pygama==2.6.2"}}}}' });
  const configForm = h(
    "form.panel",
    { novalidate: true },
    h("h2", {}, "config.json"),
    h("details", {}, h("summary", {}, "Show config.json"), configView),
    field("patch", "Change it with a JSON merge patch", patchText, "Checked by the service; refused while runs are queued."),
    h("div.actions", {}, h("button", { type: "submit" }, "Apply the patch")),
  );
  const showConfig = async () => {
    configView.textContent = JSON.stringify(await api.get(`/api/cycles/${seg(name)}/config`), null, 2);
  };
  configForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    let patch;
    try {
      patch = JSON.parse(patchText.value);
    } catch (error) {
      alert.textContent = `The patch is not JSON: ${error.message}`;
      return;
    }
    try {
      configView.textContent = JSON.stringify(await api.patch(`/api/cycles/${seg(name)}`, patch), null, 2);
      notice.textContent = "config.json changed.";
      patchText.value = "";
    } catch (error) {
      alert.textContent = error.message;
    }
  });

  const install = async (reinstall) => {
    alert.textContent = "";
    try {
      const run = await api.post(`/api/cycles/${seg(name)}/software`, { reinstall });
      notice.textContent = `Software install ${run.id} queued.`;
      showLog(run.id);
      load();
    } catch (error) {
      alert.textContent = error.message;
    }
  };

  root.append(
    h("h1", {}, `Cycle ${name}`),
    alert,
    notice,
    facts,
    h(
      "div.actions",
      {},
      h("button", { type: "button", onclick: () => install(false) }, "Install software"),
      h("button", { type: "button", onclick: () => install(true) }, "Reinstall from scratch"),
    ),
    h("h2", {}, "Runs"),
    runs,
    logTitle,
    logStatus,
    log,
    runForm,
    invForm,
    configForm,
  );
  showConfig().catch((error) => {
    alert.textContent = error.message;
  });

  const load = async () => {
    try {
      const [cycle, list] = await Promise.all([
        api.get(`/api/cycles/${seg(name)}`),
        api.get(`/api/cycles/${seg(name)}/runs`),
      ]);
      fill(
        facts,
        h(
          "dl.facts",
          {},
          [
            ["State", badge(cycle.state)],
            ["Experiment / setup", `${cycle.experiment} / ${cycle.setup}`],
            ["Path", cycle.path],
            ["Software", badge(cycle.software?.state || "-")],
            ["Checkouts", Object.entries(cycle.checkouts || {}).map(([k, v]) => `${k}: ${v.commit?.slice(0, 10) || v.ref || ""}`).join(", ")],
            ["Created", `${when(cycle.created_at)} by ${cycle.created_by}`],
          ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
        ),
      );
      fill(
        runs,
        table(list, [
          { key: "id", label: "Run", render: (r) => h("button.link", { type: "button", onclick: () => showLog(r.id) }, r.id) },
          { key: "kind", label: "Kind" },
          { key: "state", label: "State", render: (r) => badge(r.state) },
          { key: "targets", label: "Targets", render: (r) => (r.request?.targets || []).join(" ") },
          {
            key: "progress",
            label: "Progress",
            render: (r) =>
              r.progress?.total
                ? h("span", {}, h("progress", { max: r.progress.total, value: r.progress.done || 0, "aria-label": `${r.id} progress` }), ` ${r.progress.done || 0}/${r.progress.total}`)
                : "-",
          },
          { key: "created_at", label: "Queued", render: (r) => when(r.created_at) },
          { key: "message", label: "Message" },
          {
            key: "cancel",
            label: "Actions",
            render: (r) =>
              ["queued", "running"].includes(r.state)
                ? h("button.danger", { type: "button", onclick: () => api.post(`/api/cycles/${seg(name)}/runs/${seg(r.id)}/cancel`).then(load, (e) => { alert.textContent = e.message; }) }, "Cancel")
                : "",
          },
        ]),
      );
      if (!stopLog && (selected || list[0])) showLog(selected || list[0].id);
    } catch (error) {
      alert.textContent = error.message;
    }
  };
  await load();
  const reload = coalesce(load, 300);
  const unsubscribe = app.bus.subscribe((event) => {
    const ours = !event.data?.cycle || event.data.cycle === name;
    if (ours && shortType(event.type).startsWith("cycle.")) reload();
  });
  return () => {
    unsubscribe();
    if (stopLog) stopLog();
  };
}
