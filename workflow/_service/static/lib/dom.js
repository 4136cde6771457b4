// Small DOM and formatting helpers. Text always goes in as text nodes, never as HTML.

/**
 * Creates an element: h("button", {type: "button", onclick: go}, "Go").
 * Attributes named on* become listeners, `class` the class name, false/null ones are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...flat(children));
  return element;
}

function flat(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
}

/** A labelled <select>; options are [value, text] pairs or plain strings. */
export function select(label, options, value, onchange) {
  const id = `select-${label.toLowerCase().replace(/\W+/g, "-")}`;
  const control = h(
    "select",
    { id, onchange: (e) => onchange(e.target.value) },
    options.map((option) => {
      const [v, text] = Array.isArray(option) ? option : [option, option];
      return h("option", { value: v, selected: v === value }, text);
    }),
  );
  return h("span", { class: "field" }, h("label", { for: id }, label), control);
}

/** Seconds since the epoch -> local date and time. */
export function when(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
}

/** Milliseconds -> "840 ms", "1.25 s", "2 min 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** 0.6234 -> "62%". */
export function percent(p) {
  return p === null || p === undefined ? "—" : `${Math.round(p * 100)}%`;
}

/** A metric value as shown in tables (3 decimals), or a dash. */
export function metric(value) {
  return typeof value === "number" ? value.toFixed(3) : (value ?? "—");
}

/** A status badge: text plus a class for its colour. */
export function badge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

/** Pretty JSON for <pre> blocks. */
export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** The text a person reads for a prediction's input: its "text" field, else the JSON. */
export function inputText(input) {
  if (typeof input === "string") return input;
  if (input && typeof input.text === "string") return input.text;
  return json(input);
}

const scripts = new Map();

/** Loads a vendored classic script once (the libraries are big: only the views using them). */
export function loadScript(src) {
  if (!scripts.has(src)) {
    scripts.set(
      src,
      new Promise((resolve, reject) => {
        const script = h("script", { src });
        script.addEventListener("load", resolve);
        script.addEventListener("error", () => {
          scripts.delete(src);
          reject(new Error(`Could not load ${src}; the dashboard's files may be incomplete.`));
        });
        document.head.append(script);
      }),
    );
  }
  return scripts.get(src);
}

/** Asks for confirmation in a modal dialog; resolves with the reason typed, or null. */
export function confirmDialog({ title, text, confirmLabel, reasonLabel = "Reason" }) {
  return new Promise((resolve) => {
    const reason = h("input", { type: "text", id: "confirm-reason", maxlength: 1000 });
    const dialog = h(
      "dialog",
      { "aria-labelledby": "confirm-title", class: "confirm" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "confirm-title" }, title),
        h("p", {}, text),
        h("label", { for: "confirm-reason" }, `${reasonLabel} (optional)`),
        reason,
        h(
          "div",
          { class: "actions" },
          h("button", { value: "cancel", formnovalidate: true }, "Cancel"),
          h("button", { value: "confirm", class: "primary" }, confirmLabel),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm" ? reason.value.trim() : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
