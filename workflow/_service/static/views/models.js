// Model versions per agent: metrics, their history as a chart, the serving alias's moves,
// (for admins) promote and rollback, and the agent's fine-tuning jobs (views/jobs.js).

import { api } from "../lib/api.js";
import { confirmDialog, h, loadScript, metric, select, when } from "../lib/dom.js";
import { jobsSection } from "./jobs.js";

const CHART_JS = "vendor/chart.umd.min.js";
const SERIES = [
  ["accuracy", "Accuracy", "#2563eb"],
  ["macro_f1", "Macro F1", "#d97706"],
];

export async function render(ctx) {
  document.title = "Models · taskloom";
  const { agents } = await api("/api/models", { signal: ctx.signal });
  const [agent] = ctx.params;
  if (!agent && agents.length) {
    location.replace(`#/models/${encodeURIComponent(agents[0].agent)}`);
    return;
  }
  ctx.root.append(h("h1", {}, "Models"));
  if (!agent) {
    ctx.root.append(h("p", { class: "muted" }, "No model versions are registered yet."));
    return;
  }
  const names = agents.map((a) => a.agent);
  const picker = select(
    "Agent",
    names.includes(agent) ? names : [agent, ...names],
    agent,
    (value) => ctx.navigate(`#/models/${encodeURIComponent(value)}`),
  );
  const detail = await api(`/api/models/${encodeURIComponent(agent)}`, { signal: ctx.signal });
  const jobs = await jobsSection(ctx, agent);
  const admin = ctx.me?.role === "admin";
  ctx.root.append(
    h(
      "div",
      { class: "toolbar" },
      picker,
      h("span", {}, "Serving: ", h("strong", {}, detail.serving ?? "none")),
      admin ? rollbackButton(ctx, detail) : "",
    ),
    h("h2", {}, "Metric history"),
    h(
      "div",
      { class: "chart card" },
      h("canvas", {
        id: "metric-chart",
        role: "img",
        "aria-label": `Accuracy and macro F1 of ${agent}'s versions over time`,
      }),
    ),
    h("h2", {}, "Versions"),
    versionsTable(ctx, detail, admin),
    h("h2", {}, "Alias history"),
    historyTable(detail.history),
    jobs,
  );
  await drawChart(ctx, detail.versions);
}

function otherMetrics(metrics) {
  return Object.entries(metrics)
    .filter(([name]) => !SERIES.some(([key]) => key === name))
    .map(([name, value]) => `${name} ${metric(value)}`)
    .join(", ");
}

function versionsTable(ctx, detail, admin) {
  const columns = [
    "Version",
    "Status",
    "Accuracy",
    "Macro F1",
    "Other metrics",
    "Created",
    "Dataset",
  ];
  if (admin) columns.push("Actions");
  const rows = detail.versions.map((v) =>
    h(
      "tr",
      {},
      h(
        "td",
        {},
        h("strong", {}, v.version),
        v.version === detail.serving ? h("span", { class: "badge badge-serving" }, "serving") : "",
      ),
      h("td", {}, v.status),
      h("td", { class: "num" }, metric(v.metrics.accuracy)),
      h("td", { class: "num" }, metric(v.metrics.macro_f1)),
      h("td", { class: "muted" }, otherMetrics(v.metrics)),
      h("td", {}, when(v.created_at)),
      h("td", {}, v.dataset_id ?? "—"),
      admin
        ? h(
            "td",
            {},
            v.version === detail.serving ? "" : promoteButton(ctx, detail.agent, v.version),
          )
        : "",
    ),
  );
  return h(
    "table",
    { "aria-label": "Versions" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    h("tbody", {}, rows),
  );
}

function historyTable(history) {
  const rows = history.map((m) =>
    h(
      "tr",
      {},
      h("td", {}, when(m.at)),
      h("td", {}, m.alias),
      h("td", {}, m.previous_version ?? "—"),
      h("td", {}, m.version),
      h("td", {}, m.actor),
      h("td", {}, m.reason),
    ),
  );
  if (!rows.length)
    rows.push(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "The alias has never moved.")));
  return h(
    "table",
    { "aria-label": "Alias history" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["When", "Alias", "From", "To", "By", "Reason"].map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    h("tbody", {}, rows),
  );
}

async function act(ctx, { title, text, confirmLabel, path, body }) {
  const reason = await confirmDialog({ title, text, confirmLabel });
  if (reason === null) return;
  try {
    const move = await api(path, { method: "POST", body: reason ? { ...body, reason } : body });
    ctx.showStatus(
      `serving now points at ${move.version} (was ${move.previous_version ?? "none"}).`,
    );
    ctx.reload();
  } catch (error) {
    ctx.showError(error.message);
  }
}

function promoteButton(ctx, agent, version) {
  const onclick = () =>
    act(ctx, {
      title: `Promote ${version}?`,
      text: `Agents using ${agent} will serve ${version} from their next request.`,
      confirmLabel: "Promote",
      path: `/api/models/${encodeURIComponent(agent)}/promote`,
      body: { version },
    });
  return h("button", { type: "button", onclick, "aria-label": `Promote ${version}` }, "Promote");
}

function rollbackButton(ctx, detail) {
  const onclick = () =>
    act(ctx, {
      title: "Roll back?",
      text: `serving of ${detail.agent} goes back to the version it pointed at before ${detail.serving}.`,
      confirmLabel: "Roll back",
      path: `/api/models/${encodeURIComponent(detail.agent)}/rollback`,
      body: {},
    });
  return h("button", { type: "button", onclick, disabled: !detail.history.length }, "Roll back");
}

async function drawChart(ctx, versions) {
  await loadScript(CHART_JS);
  if (ctx.signal.aborted) return;
  const ordered = [...versions].sort((a, b) => a.created_at - b.created_at);
  const chart = new window.Chart(document.getElementById("metric-chart"), {
    type: "line",
    data: {
      labels: ordered.map((v) => [v.version, new Date(v.created_at * 1000).toLocaleDateString()]),
      datasets: SERIES.map(([key, label, color]) => ({
        label,
        data: ordered.map((v) => v.metrics[key] ?? null),
        borderColor: color,
        backgroundColor: color,
        spanGaps: true,
      })),
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { y: { suggestedMin: 0, suggestedMax: 1, title: { display: true, text: "score" } } },
    },
  });
  ctx.signal.addEventListener("abort", () => chart.destroy());
}
