// The taskloom dashboard: hash routes, sign-in, and the frame every view renders into.

import { api, onUnauthorized, session } from "./lib/api.js";
import { h } from "./lib/dom.js";
import * as graph from "./views/graph.js";
import * as login from "./views/login.js";
import * as models from "./views/models.js";
import * as newRun from "./views/new-run.js";
import * as review from "./views/review.js";
import * as run from "./views/run.js";
import * as runs from "./views/runs.js";

// [pattern, view, section of the nav]; the groups become ctx.params.
const ROUTES = [
  [/^\/login$/, login, null],
  [/^\/runs$/, runs, "runs"],
  [/^\/runs\/new$/, newRun, "runs"], // before the run pattern: "new" is no run id
  [/^\/runs\/([^/]+)$/, run, "runs"],
  [/^\/review(?:\/([^/]+))?$/, review, "review"],
  [/^\/models(?:\/([^/]+))?$/, models, "models"],
  [/^\/graph(?:\/([^/]+))?$/, graph, "graph"],
];

const $ = (id) => document.getElementById(id);
let current = null; // the AbortController of the view on screen
let statusTimer = 0;
let carriedError = null; // shown by the next view (why you were sent to the login view)

/** Shows an error for people (the API's message), or hides it with null. */
export function showError(message) {
  const flash = $("flash");
  flash.textContent = message ?? "";
  flash.hidden = !message;
}

/** Announces what just happened (a label saved, a promotion done). */
export function showStatus(message) {
  const status = $("status");
  status.textContent = message;
  status.classList.add("visible");
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => status.classList.remove("visible"), 4000);
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

function showFrame(section) {
  const signedIn = Boolean(session.me);
  $("nav").hidden = !signedIn;
  $("who").hidden = !signedIn;
  if (signedIn) $("who-name").textContent = `${session.me.name} · ${session.me.role}`;
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function context(controller, params, query) {
  const root = h("div", { class: "view" });
  $("main").replaceChildren(root);
  return {
    root,
    params: params.map((p) => (p === undefined ? undefined : decodeURIComponent(p))),
    query,
    signal: controller.signal,
    me: session.me,
    navigate: (hash) => {
      location.hash = hash;
    },
    reload: route,
    showError,
    showStatus,
    every(ms, task) {
      const timer = setInterval(task, ms);
      controller.signal.addEventListener("abort", () => clearInterval(timer));
    },
  };
}

async function ensureSignedIn(path) {
  if (session.me) return true;
  if (session.key) {
    try {
      session.me = await api("/api/me");
      return true;
    } catch (error) {
      if (error.status !== 401) showError(error.message);
    }
  }
  if (path !== "/login") location.replace(`#/login?next=${encodeURIComponent(location.hash)}`);
  return path === "/login";
}

async function route() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const { path, query } = parseHash();
  const match = ROUTES.map(([re, view, section]) => [re.exec(path), view, section]).find(
    ([m]) => m,
  );
  if (!match) {
    location.replace("#/runs");
    return;
  }
  if (path === "/login") session.clear(); // visiting the login view signs out
  if (!(await ensureSignedIn(path)) || controller.signal.aborted) return;
  const [m, view, section] = match;
  showFrame(section);
  showError(carriedError);
  carriedError = null;
  try {
    await view.render(context(controller, m.slice(1), query));
  } catch (error) {
    if (error.name !== "AbortError" && !controller.signal.aborted) showError(error.message);
  }
}

onUnauthorized((error) => {
  session.clear();
  const next = location.hash.startsWith("#/login")
    ? ""
    : `?next=${encodeURIComponent(location.hash)}`;
  carriedError = `Signed out: ${error.message}`;
  location.hash = `#/login${next}`;
});

$("logout").addEventListener("click", () => {
  session.clear();
  location.hash = "#/login";
});

window.addEventListener("hashchange", route);
route();
