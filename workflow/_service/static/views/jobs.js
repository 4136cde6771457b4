// An agent's fine-tuning jobs (a section of the Models view), and for operator and admin
// keys a form that starts one: a `taskloom finetune run` process on the server.

import { ApiError, api, hasRole } from "../lib/api.js";
import { badge, h, when } from "../lib/dom.js";

const REFRESH_MS = 10000; // a round takes minutes: its row changes rarely
const TIERS = [
  ["", "default"],
  ["head", "head"],
  ["lora", "lora"],
  ["full", "full"],
];

function row(job) {
  return h(
    "tr",
    {},
    h("td", { class: "num" }, String(job.id)),
    h("td", {}, badge(job.status)),
    h("td", {}, job.trigger),
    h("td", {}, job.candidate_version ?? "—"),
    h("td", {}, when(job.started_at)),
    h("td", {}, when(job.finished_at)),
    h("td", { class: "error-text" }, job.error ?? ""),
  );
}

function startForm(agent, reload) {
  const epochs = h("input", { type: "number", id: "job-epochs", min: 1, max: 100, step: 1 });
  const tier = h(
    "select",
    { id: "job-tier" },
    TIERS.map(([value, text]) => h("option", { value }, text)),
  );
  const button = h("button", { type: "submit", class: "primary" }, "Start fine-tuning");
  const result = h("p", { class: "job-result", role: "status" });

  async function onsubmit(event) {
    event.preventDefault();
    const body = {};
    if (epochs.value) body.epochs = Number(epochs.value);
    if (tier.value) body.tier = tier.value;
    button.disabled = true;
    try {
      const path = `/api/models/${encodeURIComponent(agent)}/jobs`;
      const started = await api(path, { method: "POST", body });
      result.className = "job-result";
      result.replaceChildren(
        `Started a fine-tuning round: pid ${started.pid}, log `,
        h("code", {}, started.log),
      );
      reload();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      result.className = "job-result error-text";
      result.textContent = error.message; // a 409 says a round is still running
    } finally {
      button.disabled = false;
    }
  }

  return h(
    "form",
    { class: "toolbar job-form", "aria-label": "Start fine-tuning", onsubmit },
    h(
      "span",
      { class: "field" },
      h("label", { for: "job-epochs" }, "Epochs"),
      epochs,
      h("span", { class: "muted" }, "(optional)"),
    ),
    h("span", { class: "field" }, h("label", { for: "job-tier" }, "Tier"), tier),
    button,
    result,
  );
}

/** The "Fine-tuning jobs" section of `agent`; its table refreshes while it is on screen. */
export async function jobsSection(ctx, agent) {
  const body = h("tbody");
  async function load() {
    const { jobs } = await api(`/api/models/${encodeURIComponent(agent)}/jobs`, {
      signal: ctx.signal,
    });
    body.replaceChildren(
      ...(jobs.length
        ? jobs.map(row)
        : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No fine-tuning job yet."))]),
    );
  }
  const reload = () =>
    load().catch((error) => error.name !== "AbortError" && ctx.showError(error.message));
  await load();
  ctx.every(REFRESH_MS, reload);
  const columns = ["Job", "Status", "Trigger", "Candidate", "Started", "Finished", "Error"];
  return h(
    "section",
    { "aria-labelledby": "jobs-title" },
    h("h2", { id: "jobs-title" }, "Fine-tuning jobs"),
    hasRole(ctx.me, "operator") ? startForm(agent, reload) : "",
    h(
      "table",
      { "aria-label": "Fine-tuning jobs" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      body,
    ),
  );
}
