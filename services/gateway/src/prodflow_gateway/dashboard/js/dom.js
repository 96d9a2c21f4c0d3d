// Small DOM helpers: every piece of data goes in as text, never as HTML.

/** h("tag.class#id", {attr: value, onclick: fn}, ...children) → an element. */
export function h(spec, attrs = {}, ...children) {
  const [, tag = "div", rest = ""] = spec.match(/^([a-z0-9]+)?(.*)$/i) || [];
  const el = document.createElement(tag || "div");
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status badge, styled by its value. */
export function badge(value) {
  return h(`span.badge.s-${String(value).replace(/[^A-Za-z0-9_-]/g, "")}`, {}, value ?? "-");
}

/** "2026-11-25T10:05:00Z" → "2026-11-25 10:05:00" (UTC, as the API gives it). */
export function when(value) {
  if (!value) return "-";
  return String(value).replace("T", " ").replace(/\.\d+/, "").replace(/(Z|\+00:00)$/, "");
}

/** A table from rows and columns [{key, label, render?, num?}]. */
export function table(rows, columns, caption) {
  const head = h("tr", {}, columns.map((c) => h(c.num ? "th.num" : "th", { scope: "col" }, c.label)));
  const body = rows.map((row) =>
    h("tr", {}, columns.map((c) => h(c.num ? "td.num" : "td", {}, c.render ? c.render(row) : row[c.key] ?? "-"))),
  );
  const empty = rows.length ? [] : [h("tr", {}, h("td.muted", { colspan: columns.length }, "Nothing yet."))];
  return h("table", {}, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body, empty));
}

/** A labelled form control: label, control, hint and an error slot tied with aria-describedby. */
export function field(id, labelText, control, hint) {
  control.id = id;
  control.name = control.name || id;
  const hintEl = hint ? h(`p.hint#${id}-hint`, {}, hint) : null;
  const errorEl = h(`p.field-error#${id}-error`, { role: "alert" });
  control.setAttribute("aria-describedby", [hint ? `${id}-hint` : "", `${id}-error`].join(" ").trim());
  return h("div.field", {}, h("label", { for: id }, labelText), hintEl, control, errorEl);
}

/** Show a problem's field errors next to their controls (by the field name the API reports). */
export function showFieldErrors(form, problem, fieldIds) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const unmatched = [];
  for (const error of problem?.errors || []) {
    const name = String(error.field || "");
    const id = fieldIds[name] || fieldIds[name.split(".")[0]];
    const control = id && form.querySelector(`#${id}`);
    if (control) {
      control.setAttribute("aria-invalid", "true");
      const slot = form.querySelector(`#${id}-error`);
      slot.textContent = [slot.textContent, `${name}: ${error.message}`].filter(Boolean).join("; ");
    } else {
      unmatched.push(`${name}: ${error.message}`);
    }
  }
  return unmatched;
}

/** Move focus to a view's heading so screen readers announce the page change. */
export function focusHeading(root) {
  const heading = root.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

/** `fn` called at most once per `ms`, after the first call of a burst (bursts of events cause one reload). */
export function coalesce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

/**
 * A form to create or replace a named resource from a JSON document (admins' catalog modules, sites):
 * save(name, body) is awaited; its ApiError is shown with every bad field.
 */
export function jsonForm(prefix, heading, nameLabel, example, save) {
  const name = h("input", { type: "text", required: true });
  const text = h("textarea", { rows: 8, spellcheck: "false" });
  text.value = JSON.stringify(example, null, 2);
  const alert = h("div.alert", { role: "alert" });
  const notice = h("div.notice", { role: "status" });
  const form = h(
    "form.panel",
    { novalidate: true },
    h("h2", {}, heading),
    field(`${prefix}-name`, nameLabel, name),
    field(`${prefix}-body`, "Definition (JSON)", text),
    h("div.actions", {}, h("button", { type: "submit" }, "Save")),
    alert,
    notice,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    notice.textContent = "";
    let body;
    try {
      body = JSON.parse(text.value);
    } catch (error) {
      alert.textContent = `Not JSON: ${error.message}`;
      return;
    }
    try {
      await save(name.value.trim(), body);
      notice.textContent = `${name.value.trim()} saved.`;
    } catch (error) {
      const problems = (error.problem?.errors || []).map((e) => `${e.field}: ${e.message}`);
      alert.textContent = [error.message, ...problems.filter((p) => !error.message.includes(p))].join(" — ");
    }
  });
  return {
    form,
    edit(value, spec) {
      name.value = value;
      text.value = JSON.stringify(spec, null, 2);
      name.focus();
    },
  };
}
