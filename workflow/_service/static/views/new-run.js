// A new run (operator and admin keys): pick a workflow, fill in its task from the task
// schema (or as raw JSON), submit it in the background and follow it on the run's page.
// #/runs/new?workflow=W

import { ApiError, api, hasRole } from "../lib/api.js";
import { h, select } from "../lib/dom.js";
import { schemaForm } from "../lib/schema-form.js";

export async function render(ctx) {
  document.title = "New run · taskloom";
  ctx.root.append(h("p", {}, h("a", { href: "#/runs" }, "← Runs")), h("h1", {}, "New run"));
  if (!hasRole(ctx.me, "operator")) {
    ctx.root.append(
      h(
        "p",
        { class: "muted" },
        `Your key's role (${ctx.me.role}) cannot submit runs; an operator or admin key can.`,
      ),
    );
    return;
  }
  const { workflows } = await api("/api/workflows", { signal: ctx.signal });
  if (!workflows.length) {
    ctx.root.append(h("p", { class: "muted" }, "The service serves no workflow."));
    return;
  }
  const names = workflows.map((w) => w.name);
  const workflow = workflows.find((w) => w.name === ctx.query.get("workflow")) ?? workflows[0];
  ctx.root.append(
    h(
      "div",
      { class: "toolbar" },
      select("Workflow", names, workflow.name, (value) =>
        ctx.navigate(`#/runs/new?workflow=${encodeURIComponent(value)}`),
      ),
      h("span", { class: "muted" }, `entry ${workflow.entry} · ${workflow.steps.length} steps`),
    ),
    taskForm(ctx, workflow),
  );
}

function taskForm(ctx, workflow) {
  const fields = schemaForm(workflow.task_schema);
  const submit = h("button", { type: "submit", class: "primary" }, "Start run");

  async function onsubmit(event) {
    event.preventDefault();
    const { value, problems } = fields.read();
    fields.showProblems(problems ?? [], problems ? "The task is not ready." : "");
    if (problems) return;
    submit.disabled = true;
    try {
      const path = `/api/workflows/${encodeURIComponent(workflow.name)}/runs?wait=false`;
      const { run_id: runId } = await api(path, { method: "POST", body: value });
      ctx.showStatus(`Run ${runId} started.`);
      ctx.navigate(`#/runs/${encodeURIComponent(runId)}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const { problems: found, message } = error;
      fields.showProblems(found, found.length ? "The service did not accept this task." : message);
    } finally {
      submit.disabled = false;
    }
  }

  return h(
    "form",
    {
      class: "task-form card",
      novalidate: true,
      "aria-label": `Task for ${workflow.name}`,
      onsubmit,
    },
    fields.element,
    h("div", { class: "actions" }, submit),
  );
}
