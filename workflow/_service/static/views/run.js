// One run: its summary, and a timeline of its steps (live from /events while it runs).

import { api, streamEvents } from "../lib/api.js";
import { badge, duration, h, json, when } from "../lib/dom.js";

function decisionText(decision) {
  const targets = decision.targets.length ? ` → ${decision.targets.join(", ")}` : "";
  switch (decision.kind) {
    case "rule":
      return `${decision.rule ?? "?"}${targets}`;
    case "default":
      return `default route${targets}`;
    case "error":
      return `error route${targets}`;
    case "end":
      return "end of run";
    default:
      return `${decision.kind}${targets}`;
  }
}

function stepItem(step, longest) {
  const bar = h("span", { class: `bar bar-${step.status}` });
  // CSSOM, not a style attribute: works under a strict Content-Security-Policy.
  bar.style.width = `${Math.max(0.5, (step.duration_ms / longest) * 100)}%`;
  return h(
    "li",
    { class: "step", "aria-label": `Step ${step.step}` },
    h(
      "div",
      { class: "step-head" },
      h("span", { class: "seq" }, `#${step.seq}`),
      h("strong", { class: "step-name" }, step.step),
      h("span", { class: "muted" }, step.agent),
      badge(step.status),
      h("span", { class: "muted" }, `attempts ${step.attempts}`),
      step.visit > 1 ? h("span", { class: "muted" }, `visit ${step.visit}`) : "",
    ),
    h(
      "div",
      { class: "step-bar", title: `${step.duration_ms} ms` },
      h("span", { class: "track" }, bar),
      h("span", { class: "num" }, duration(step.duration_ms)),
    ),
    h(
      "p",
      { class: "decision" },
      h("span", { class: "muted" }, step.decision.kind === "rule" ? "Fired rule: " : "Route: "),
      h("code", {}, decisionText(step.decision)),
      step.decision.reason ? h("span", { class: "reason" }, ` — ${step.decision.reason}`) : "",
    ),
    step.error ? h("p", { class: "error-text" }, step.error) : "",
    h(
      "details",
      {},
      h("summary", {}, "Input and output"),
      h(
        "div",
        { class: "io" },
        h("div", {}, h("h3", {}, "Input"), h("pre", {}, json(step.input))),
        h("div", {}, h("h3", {}, "Output"), h("pre", {}, json(step.output))),
      ),
    ),
  );
}

function summary(run) {
  const facts = [
    ["Workflow", h("a", { href: `#/graph/${encodeURIComponent(run.workflow)}` }, run.workflow)],
    ["Status", badge(run.status)],
    ["Started", when(run.created_at)],
    ["Finished", when(run.finished_at)],
    ["Duration", run.duration_s === null ? "—" : duration(run.duration_s * 1000)],
  ];
  return h(
    "dl",
    { class: "facts" },
    facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
  );
}

export async function render(ctx) {
  const [runId] = ctx.params;
  document.title = `Run ${runId} · taskloom`;
  const run = await api(`/api/runs/${encodeURIComponent(runId)}`, { signal: ctx.signal });
  const steps = new Map(run.steps.map((s) => [s.seq, s]));
  const head = h("div");
  const live = h("p", { class: "live", role: "status", hidden: true });
  const timeline = h("ol", { class: "timeline", "aria-label": "Steps" });
  const task = h("details", {}, h("summary", {}, "Task"), h("pre", {}, json(run.task)));

  function draw(summaryOf) {
    head.replaceChildren(
      summary(summaryOf),
      summaryOf.error ? h("p", { class: "error-text" }, summaryOf.error) : "",
    );
    const ordered = [...steps.values()].sort((a, b) => a.seq - b.seq);
    // Fake and cached steps take well under a millisecond: no floor of 1 ms here.
    const longest = Math.max(Number.MIN_VALUE, ...ordered.map((s) => s.duration_ms));
    timeline.replaceChildren(...ordered.map((s) => stepItem(s, longest)));
    if (!ordered.length) timeline.append(h("li", { class: "muted" }, "No step has run yet."));
  }

  ctx.root.append(
    h("p", {}, h("a", { href: "#/runs" }, "← Runs")),
    h("h1", {}, "Run ", h("span", { class: "mono" }, run.run_id)),
    head,
    task,
    h("h2", {}, "Steps"),
    live,
    timeline,
  );
  draw(run);
  if (run.status === "running") await follow(ctx, runId, run, steps, draw, live);
}

async function follow(ctx, runId, run, steps, draw, live) {
  live.textContent = "Live: following this run…";
  live.hidden = false;
  let summaryOf = run;
  await streamEvents(`/api/runs/${encodeURIComponent(runId)}/events`, {
    signal: ctx.signal,
    onEvent({ event, data }) {
      if (event === "step") {
        const step = JSON.parse(data);
        steps.set(step.seq, step);
      } else if (event === "end") {
        summaryOf = { ...summaryOf, ...JSON.parse(data) };
      }
      draw(summaryOf);
    },
  });
  const closedEarly = summaryOf.status === "running";
  live.textContent = closedEarly ? "The live stream closed; reload to see more." : "";
  live.hidden = !closedEarly;
}
