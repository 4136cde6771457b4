// Runs, newest first: filter by workflow and status, page back with next_before, auto-refresh.
// The hash holds the state: #/runs?workflow=W&status=S&before=T&limit=N.

import { api, hasRole } from "../lib/api.js";
import { badge, duration, h, select, when } from "../lib/dom.js";

const REFRESH_MS = 5000;
const PAGE = 25;
const STATUSES = [["", "any"], "running", "succeeded", "failed"];

function hashWith(query, changes) {
  const next = new URLSearchParams(query);
  for (const [name, value] of Object.entries(changes)) {
    if (value) next.set(name, value);
    else next.delete(name);
  }
  const search = next.toString();
  return `#/runs${search ? `?${search}` : ""}`;
}

function row(run) {
  return h(
    "tr",
    {},
    h(
      "td",
      {},
      h("a", { href: `#/runs/${encodeURIComponent(run.run_id)}`, class: "mono" }, run.run_id),
    ),
    h("td", {}, run.workflow),
    h("td", {}, badge(run.status)),
    h("td", {}, when(run.created_at)),
    h("td", { class: "num" }, run.duration_s === null ? "—" : duration(run.duration_s * 1000)),
    h("td", { class: "error-text" }, run.error ?? ""),
  );
}

export async function render(ctx) {
  document.title = "Runs · taskloom";
  const { query } = ctx;
  const before = query.get("before");
  const { workflows } = await api("/api/workflows", { signal: ctx.signal });
  const refresh = h("input", { type: "checkbox", id: "auto-refresh", checked: true });
  const body = h("tbody");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const filters = h(
    "div",
    { class: "toolbar" },
    select(
      "Workflow",
      [["", "all"], ...workflows.map((w) => w.name)],
      query.get("workflow") ?? "",
      (value) => ctx.navigate(hashWith(query, { workflow: value, before: null })),
    ),
    select("Status", STATUSES, query.get("status") ?? "", (value) =>
      ctx.navigate(hashWith(query, { status: value, before: null })),
    ),
    h("span", { class: "field" }, refresh, h("label", { for: "auto-refresh" }, "Auto-refresh")),
  );
  const table = h(
    "table",
    { "aria-label": "Runs" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Run", "Workflow", "Status", "Started", "Duration", "Error"].map((c) =>
          h("th", { scope: "col" }, c),
        ),
      ),
    ),
    body,
  );
  const workflow = query.get("workflow");
  const newRun = `#/runs/new${workflow ? `?workflow=${encodeURIComponent(workflow)}` : ""}`;
  ctx.root.append(
    h(
      "div",
      { class: "view-head" },
      h("h1", {}, "Runs"),
      hasRole(ctx.me, "operator")
        ? h("a", { href: newRun, class: "button primary" }, "New run")
        : "",
    ),
    filters,
    table,
    pager,
  );

  async function load() {
    const params = new URLSearchParams({ limit: String(PAGE) });
    for (const name of ["workflow", "status", "before", "limit"]) {
      if (query.get(name)) params.set(name, query.get(name));
    }
    const page = await api(`/api/runs?${params}`, { signal: ctx.signal });
    body.replaceChildren(
      ...(page.runs.length
        ? page.runs.map(row)
        : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs match these filters."))]),
    );
    pager.replaceChildren(
      before ? h("a", { href: hashWith(query, { before: null }) }, "← Newest") : "",
      page.next_before === null
        ? ""
        : h("a", { href: hashWith(query, { before: String(page.next_before) }) }, "Older →"),
    );
  }

  await load();
  ctx.every(REFRESH_MS, () => {
    if (refresh.checked)
      load().catch((error) => error.name !== "AbortError" && ctx.showError(error.message));
  });
}
