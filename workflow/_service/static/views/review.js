// The review queue of one agent, most uncertain first, labelled from the keyboard.

import { api } from "../lib/api.js";
import { h, inputText, percent, select } from "../lib/dom.js";

const PAGE = 20;
const SHORTCUTS = [
  ["1 2 3", "accept guess 1, 2 or 3"],
  ["j / ↓", "next item"],
  ["k / ↑", "previous item"],
  ["s", "skip"],
  ["/", "search all labels"],
  ["Enter", "submit the chosen label"],
  ["Esc", "leave the label field"],
];

function shortcutHelp() {
  return h(
    "aside",
    { class: "card shortcuts", "aria-label": "Keyboard shortcuts" },
    h("h2", {}, "Keyboard"),
    h(
      "dl",
      {},
      SHORTCUTS.map(([keys, what]) => [h("dt", {}, h("kbd", {}, keys)), h("dd", {}, what)]),
    ),
  );
}

export async function render(ctx) {
  document.title = "Review · taskloom";
  const { agents } = await api("/api/review", { signal: ctx.signal });
  const [agent] = ctx.params;
  if (!agent && agents.length) {
    location.replace(`#/review/${encodeURIComponent(agents[0].agent)}`);
    return;
  }
  const picker = select(
    "Agent",
    [
      ...(agents.some((a) => a.agent === agent) ? [] : [[agent ?? "", agent ?? "—"]]),
      ...agents.map((a) => [a.agent, `${a.agent} (${a.open} open)`]),
    ],
    agent ?? "",
    (value) => ctx.navigate(`#/review/${encodeURIComponent(value)}`),
  );
  ctx.root.append(h("h1", {}, "Review"), h("div", { class: "toolbar" }, picker));
  if (!agent) {
    ctx.root.append(
      h("p", { class: "muted" }, "Nothing to review: no agent has open review items."),
    );
    return;
  }
  const queue = new ReviewQueue(ctx, agent);
  let open = agents.find((a) => a.agent === agent)?.open ?? 0;
  queue.onDone = () => {
    open = Math.max(0, open - 1);
    const option = picker.querySelector(`option[value="${CSS.escape(agent)}"]`);
    if (option) option.textContent = `${agent} (${open} open)`;
  };
  ctx.root.append(h("div", { class: "review" }, queue.list, queue.panel, shortcutHelp()));
  await queue.load();
  document.addEventListener("keydown", (e) => queue.onKey(e), { signal: ctx.signal });
}

/** The items on screen, the selected one, and what labelling does to them. */
class ReviewQueue {
  constructor(ctx, agent) {
    this.ctx = ctx;
    this.agent = agent;
    this.items = [];
    this.index = 0;
    this.onDone = () => {}; // an item was labelled or skipped
    this.list = h("ul", { role: "listbox", "aria-label": "Review items", class: "items card" });
    this.panel = h("section", { class: "card panel", "aria-label": "Selected item" });
    this.labelInput = h("input", {
      id: "label-search",
      list: "label-set",
      autocomplete: "off",
      placeholder: "Type to search labels",
    });
  }

  async load() {
    const path = `/api/review/${encodeURIComponent(this.agent)}?limit=${PAGE}`;
    const { items } = await api(path, { signal: this.ctx.signal });
    this.items = items;
    this.index = 0;
    this.draw();
  }

  get item() {
    return this.items[this.index];
  }

  draw() {
    this.list.replaceChildren(
      ...this.items.map((item, i) =>
        h(
          "li",
          {
            role: "option",
            id: `item-${item.id}`,
            "aria-selected": String(i === this.index),
            onclick: () => this.move(i - this.index),
          },
          h("span", { class: "snippet" }, inputText(item.input)),
          h("span", { class: "muted" }, `uncertainty ${item.priority.toFixed(2)}`),
        ),
      ),
    );
    if (this.item) this.list.setAttribute("aria-activedescendant", `item-${this.item.id}`);
    else this.list.removeAttribute("aria-activedescendant");
    this.drawPanel();
  }

  drawPanel() {
    const item = this.item;
    if (!item) {
      this.panel.replaceChildren(h("p", { class: "muted" }, "The queue is empty. Well done."));
      return;
    }
    const guesses = item.guesses.map((g, i) =>
      h(
        "button",
        {
          type: "button",
          class: "guess",
          "aria-keyshortcuts": String(i + 1),
          onclick: () => this.submit(g.label),
        },
        h("kbd", {}, String(i + 1)),
        h("span", {}, g.label),
        h("span", { class: "prob" }, percent(g.probability)),
      ),
    );
    this.labelInput.value = "";
    this.panel.replaceChildren(
      h("h2", {}, `Prediction #${item.prediction_id}`),
      h("blockquote", { class: "input-text" }, inputText(item.input)),
      h(
        "p",
        { class: "muted" },
        `Model said ${item.label ?? "—"} (${percent(item.confidence)})`,
        item.run_id
          ? [
              " in ",
              h("a", { href: `#/runs/${encodeURIComponent(item.run_id)}` }, `run ${item.run_id}`),
            ]
          : "",
      ),
      h("div", { class: "guesses", role: "group", "aria-label": "Top guesses" }, guesses),
      this.labelForm(item),
    );
  }

  labelForm(item) {
    const labels = item.label_set ?? [];
    return h(
      "form",
      {
        class: "label-form",
        onsubmit: (e) => {
          e.preventDefault();
          this.submit(this.labelInput.value.trim());
        },
      },
      h(
        "label",
        { for: "label-search" },
        `Label (${labels.length ? `${labels.length} in the set` : "free text"})`,
      ),
      this.labelInput,
      h(
        "datalist",
        { id: "label-set" },
        labels.map((l) => h("option", { value: l })),
      ),
      h("button", { type: "submit", class: "primary" }, "Submit label"),
      h("button", { type: "button", onclick: () => this.skip() }, "Skip"),
    );
  }

  move(by) {
    if (!this.items.length) return;
    this.index = Math.min(this.items.length - 1, Math.max(0, this.index + by));
    this.draw();
    this.list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: "nearest" });
  }

  /** Takes the current item off the list at once; puts it back if the server refuses. */
  take() {
    const item = this.item;
    const at = this.index;
    this.items.splice(at, 1);
    this.index = Math.min(at, Math.max(0, this.items.length - 1));
    this.draw();
    return () => {
      this.items.splice(Math.min(at, this.items.length), 0, item);
      this.index = at;
      this.draw();
    };
  }

  async submit(label) {
    const item = this.item;
    if (!item) return;
    if (!label) {
      this.ctx.showError("Choose a label first: press 1, 2 or 3, or / to search the label set.");
      return;
    }
    if (item.label_set && !item.label_set.includes(label)) {
      this.ctx.showError(
        `'${label}' is not one of ${this.agent}'s labels; pick one from the list (press /).`,
      );
      return;
    }
    this.ctx.showError(null);
    const restore = this.take();
    try {
      await api("/api/feedback", {
        method: "POST",
        body: { prediction_id: item.prediction_id, label },
      });
      this.ctx.showStatus(`Labelled #${item.prediction_id} as ${label}.`);
      this.onDone();
    } catch (error) {
      // 409: this key already labelled it (another tab, say): it stays off the list.
      if (error.status !== 409) restore();
      this.ctx.showError(error.message);
    }
    await this.refillIfEmpty();
  }

  async skip() {
    const item = this.item;
    if (!item) return;
    const restore = this.take();
    try {
      await api(`/api/review/items/${item.id}/skip`, { method: "POST" });
      this.ctx.showStatus(`Skipped #${item.prediction_id}.`);
      this.onDone();
    } catch (error) {
      restore();
      this.ctx.showError(error.message);
    }
    await this.refillIfEmpty();
  }

  async refillIfEmpty() {
    if (!this.items.length && !this.ctx.signal.aborted) await this.load();
  }

  onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || document.querySelector("dialog[open]"))
      return;
    const target = event.target;
    if (target.closest?.("input, select, textarea")) {
      if (event.key === "Escape") target.blur();
      return; // typing a label; Enter submits its form
    }
    if (target.closest?.("button, a") && (event.key === "Enter" || event.key === " ")) return;
    if (!this.handle(event.key)) return;
    event.preventDefault();
  }

  handle(key) {
    const guess = { 1: 0, 2: 1, 3: 2 }[key];
    if (guess !== undefined) {
      const label = this.item?.guesses[guess]?.label;
      if (label) this.submit(label);
      return true;
    }
    const actions = {
      j: () => this.move(1),
      ArrowDown: () => this.move(1),
      k: () => this.move(-1),
      ArrowUp: () => this.move(-1),
      s: () => this.skip(),
      "/": () => this.labelInput.focus(),
      Enter: () => this.submit(this.labelInput.value.trim()),
    };
    if (!actions[key]) return false;
    actions[key]();
    return true;
  }
}
