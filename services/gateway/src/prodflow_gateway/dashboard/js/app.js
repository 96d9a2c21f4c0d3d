// The dashboard: log in with a token, then hash-routed views over the gateway's API and event stream.

import { api, token } from "./api.js";
import { fill, focusHeading, h } from "./dom.js";
import { EventBus } from "./stream.js";
import * as admin from "./views/admin.js";
import * as audit from "./views/audit.js";
import * as campaigns from "./views/campaigns.js";
import * as cycles from "./views/cycles.js";
import * as events from "./views/events.js";
import * as health from "./views/health.js";
import * as jobs from "./views/jobs.js";
import * as labels from "./views/labels.js";
import * as login from "./views/login.js";
import * as provenance from "./views/provenance.js";
import * as requests from "./views/requests.js";
import * as sites from "./views/sites.js";
import * as webhooks from "./views/webhooks.js";

const ROUTES = [
  [/^\/login$/, login.render],
  [/^\/health$/, health.render],
  [/^\/events$/, events.render],
  [/^\/requests$/, requests.renderList],
  [/^\/requests\/new$/, requests.renderForm],
  [/^\/requests\/([^/]+)$/, requests.renderOne],
  [/^\/campaigns$/, campaigns.renderList],
  [/^\/campaigns\/new$/, campaigns.renderForm],
  [/^\/campaigns\/([^/]+)$/, campaigns.renderOne],
  [/^\/sites$/, sites.render],
  [/^\/catalog$/, admin.renderCatalog],
  [/^\/tokens$/, admin.renderTokens],
  [/^\/audit$/, audit.render],
  [/^\/webhooks$/, webhooks.render],
  [/^\/labels$/, labels.renderList],
  [/^\/labels\/([^/]+)$/, labels.renderOne],
  [/^\/jobs$/, jobs.renderList],
  [/^\/jobs\/([^/]+)$/, jobs.renderOne],
  [/^\/cycles$/, cycles.renderList],
  [/^\/cycles\/([^/]+)$/, cycles.renderOne],
  [/^\/provenance$/, provenance.render],
];

const app = {
  me: null,
  bus: new EventBus(),
  cleanup: null,
  navigate(path) {
    window.location.hash = `#${path}`;
  },
};

function routeOf(hash) {
  const [path, search = ""] = hash.replace(/^#/, "").split("?");
  return { path: path || "/", query: new URLSearchParams(search) };
}

async function whoami() {
  if (!token.get()) return null;
  try {
    return await api.get("/api/auth/whoami");
  } catch {
    return null;
  }
}

function showSession() {
  const signedIn = Boolean(app.me);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (signedIn) {
    document.getElementById("who-name").textContent = `${app.me.user} · ${app.me.roles.join(", ")}`;
    for (const item of document.querySelectorAll("[data-role]")) item.hidden = !app.me.roles.includes(item.dataset.role);
  }
}

function markCurrent(path) {
  for (const link of document.querySelectorAll("nav a")) {
    const target = link.getAttribute("href").slice(1);
    if (path === target || path.startsWith(`${target}/`)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function render() {
  const main = document.getElementById("main");
  const { path, query } = routeOf(window.location.hash);
  if (app.cleanup) app.cleanup();
  app.cleanup = null;
  if (!app.me && path !== "/login") {
    app.navigate(`/login?next=${encodeURIComponent(path)}`);
    return;
  }
  if (path === "/") {
    app.navigate("/requests");
    return;
  }
  markCurrent(path);
  const match = ROUTES.map(([pattern, view]) => [path.match(pattern), view]).find(([m]) => m);
  fill(main);
  if (!match) {
    main.append(h("h1", {}, "Not found"), h("p", {}, "No such page. "), h("a", { href: "#/requests" }, "Requests"));
    focusHeading(main);
    return;
  }
  const [found, view] = match;
  const params = found.slice(1).map(decodeURIComponent);
  const result = view(main, { ...app, params, query });
  focusHeading(main);
  const cleanup = await result;
  if (typeof cleanup === "function") app.cleanup = cleanup;
}

export async function signedIn(me) {
  app.me = me;
  showSession();
  app.bus.start();
}

function signOut() {
  token.clear();
  app.me = null;
  app.bus.stop();
  showSession();
  app.navigate("/login");
}

async function start() {
  app.signedIn = signedIn;
  const stateEl = document.getElementById("stream-state");
  app.bus.onState((state, detail) => {
    stateEl.className = `stream-state ${state}`;
    stateEl.textContent = state === "live" ? "live" : state === "connecting" ? "connecting…" : "offline";
    stateEl.title = detail || "";
  });
  document.getElementById("logout").addEventListener("click", signOut);
  window.addEventListener("prodflow:unauthenticated", () => {
    if (app.me) signOut();
  });
  window.addEventListener("hashchange", render);
  const me = await whoami();
  if (me) await signedIn(me);
  else token.clear();
  await render();
}

start();
