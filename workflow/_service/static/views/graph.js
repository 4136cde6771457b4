// A workflow's graph: the service's mermaid text, drawn by the vendored mermaid.

import { api, hasRole } from "../lib/api.js";
import { h, loadScript, select } from "../lib/dom.js";

const MERMAID = "vendor/mermaid.min.js";
let drawn = 0; // mermaid needs a fresh element id per render

async function mermaidReady() {
  await loadScript(MERMAID);
  // "strict": labels are text, never HTML, and clicks run no scripts.
  window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
  return window.mermaid;
}

export async function render(ctx) {
  document.title = "Graphs · taskloom";
  const { workflows } = await api("/api/workflows", { signal: ctx.signal });
  const [name] = ctx.params;
  if (!name && workflows.length) {
    location.replace(`#/graph/${encodeURIComponent(workflows[0].name)}`);
    return;
  }
  ctx.root.append(h("h1", {}, "Workflow graphs"));
  if (!name) {
    ctx.root.append(h("p", { class: "muted" }, "The service serves no workflow."));
    return;
  }
  const names = workflows.map((w) => w.name);
  const info = workflows.find((w) => w.name === name);
  const { mermaid: text } = await api(`/api/workflows/${encodeURIComponent(name)}/graph`, {
    signal: ctx.signal,
  });
  const figure = h("figure", { class: "graph card", "aria-label": `Graph of ${name}` });
  ctx.root.append(
    h(
      "div",
      { class: "toolbar" },
      select("Workflow", names.includes(name) ? names : [name, ...names], name, (value) =>
        ctx.navigate(`#/graph/${encodeURIComponent(value)}`),
      ),
      info ? h("span", { class: "muted" }, `entry ${info.entry} · ${info.steps.length} steps`) : "",
      info && hasRole(ctx.me, "operator")
        ? h(
            "a",
            { href: `#/runs/new?workflow=${encodeURIComponent(name)}`, class: "button" },
            "New run",
          )
        : "",
    ),
    figure,
    h(
      "details",
      { open: true },
      h("summary", {}, "Mermaid source"),
      h("pre", { class: "mermaid-source" }, text),
    ),
  );
  try {
    const mermaid = await mermaidReady();
    drawn += 1;
    const { svg } = await mermaid.render(`workflow-graph-${drawn}`, text);
    if (ctx.signal.aborted) return;
    figure.innerHTML = svg; // sanitised by mermaid (securityLevel "strict")
  } catch (error) {
    figure.replaceChildren(
      h(
        "p",
        { class: "error-text" },
        `The graph could not be drawn (${error.message}); its text is below.`,
      ),
    );
  }
}
