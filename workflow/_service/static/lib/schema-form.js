// A form built from a JSON schema's top-level properties (a workflow's task_schema), with a
// raw-JSON mode for the whole value, and a place for the server's problems field by field.

import { h } from "./dom.js";

const SIMPLE = new Set(["string", "integer", "number", "boolean"]);
const LONG_TEXT = 100; // strings that may be longer than this get a textarea

function resolve(schema, prop) {
  const ref = prop.$ref ?? (prop.allOf?.length === 1 ? prop.allOf[0].$ref : undefined);
  const name = ref?.startsWith("#/$defs/") ? ref.slice("#/$defs/".length) : null;
  return name && schema.$defs?.[name] ? { ...schema.$defs[name], ...prop } : prop;
}

/** string, integer, number, boolean, enum (strings), or json for anything else. */
function kindOf(prop) {
  const options = prop.anyOf ? prop.anyOf.filter((p) => p.type !== "null") : [prop];
  const only = options.length === 1 ? options[0] : {};
  if (Array.isArray(only.enum) && only.enum.every((v) => typeof v === "string")) return "enum";
  return SIMPLE.has(only.type) ? only.type : "json";
}

function control(kind, id, prop, required) {
  const common = { id, name: id, "aria-required": required ? "true" : null };
  const value = prop.default;
  switch (kind) {
    case "boolean":
      return h("input", { ...common, type: "checkbox", checked: value === true });
    case "integer":
    case "number":
      return h("input", { ...common, type: "number", step: kind === "integer" ? 1 : "any", value });
    case "enum": {
      const choices = (prop.enum ?? prop.anyOf.find((p) => p.enum).enum).map((v) =>
        h("option", { value: v, selected: v === value }, v),
      );
      return h("select", common, required ? "" : h("option", { value: "" }, "—"), choices);
    }
    case "string":
      if (prop.maxLength !== undefined && prop.maxLength <= LONG_TEXT) {
        return h("input", { ...common, type: "text", value });
      }
      return h("textarea", { ...common, rows: 3 }, value ?? "");
    default:
      return h(
        "textarea",
        { ...common, rows: 2, class: "mono" },
        value === undefined ? "" : JSON.stringify(value),
      );
  }
}

function field(schema, name, required) {
  const prop = resolve(schema, schema.properties[name]);
  const kind = kindOf(prop);
  const id = `task-${name}`;
  const input = control(kind, id, prop, required);
  const problem = h("p", { class: "problem error-text", id: `${id}-problem`, hidden: true });
  const hint = prop.description
    ? h("small", { class: "hint", id: `${id}-hint` }, prop.description)
    : "";
  input.setAttribute("aria-describedby", `${hint ? `${id}-hint ` : ""}${id}-problem`);
  const label = h(
    "label",
    { for: id },
    prop.title ?? name,
    required ? h("span", { class: "required", title: "required" }, " *") : "",
    kind === "json" ? h("span", { class: "muted" }, " (JSON)") : "",
  );
  const element = h("div", { class: `form-field field-${kind}` }, label, input, hint, problem);
  return { name, kind, input, problem, element };
}

/** The field's value, undefined when left empty (the schema's default then applies). */
function read(f) {
  if (f.kind === "boolean") return f.input.checked;
  if (f.input.validity.badInput) throw new Error("not a number"); // its value reads as ""
  const text = f.input.value;
  if (text.trim() === "") return undefined;
  if (f.kind === "integer" || f.kind === "number") return Number(text);
  if (f.kind !== "json") return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`not valid JSON (${error.message})`);
  }
}

function write(f, value) {
  if (f.kind === "boolean") f.input.checked = value === true;
  else if (value === undefined || value === null) f.input.value = "";
  else if (f.kind === "json") f.input.value = JSON.stringify(value);
  else f.input.value = String(value);
}

/**
 * The form of `schema` (a JSON schema of an object). Returns {element, read, showProblems}:
 * read() gives {value} or {problems: ["field: what is wrong", ...]}; showProblems(list,
 * message) puts each problem next to the field it names, and the message and the other
 * problems below the fields; showProblems([]) clears them.
 */
export function schemaForm(schema) {
  const required = new Set(schema.required ?? []);
  const names = Object.keys(schema.properties ?? {});
  const fields = names.map((name) => field(schema, name, required.has(name)));
  const byName = new Map(fields.map((f) => [f.name, f]));
  const general = h("div", { class: "form-problems error-text", role: "alert", hidden: true });
  const raw = h("textarea", { id: "raw-task", class: "mono", rows: 10, hidden: true });
  const toggle = h("input", { type: "checkbox", id: "raw-task-toggle" });
  const fieldset = h("div", { class: "form-fields" }, fields.map((f) => f.element));

  function readFields() {
    const value = {};
    const problems = [];
    for (const f of fields) {
      try {
        const v = read(f);
        if (v !== undefined) value[f.name] = v;
      } catch (error) {
        problems.push(`${f.name}: ${error.message}`);
      }
    }
    return { value, problems };
  }

  function readRaw() {
    try {
      return { value: JSON.parse(raw.value), problems: [] };
    } catch (error) {
      return { problems: [`The raw JSON does not parse: ${error.message}`] };
    }
  }

  function showProblems(problems, message = "") {
    for (const f of fields) {
      f.problem.replaceChildren();
      f.problem.hidden = true;
      f.input.removeAttribute("aria-invalid");
    }
    const rest = [];
    for (const problem of problems) {
      const where = problem.split(":", 1)[0].trim(); // "tags.0" for an item of tags
      const f = toggle.checked ? null : byName.get(where.split(".", 1)[0]);
      if (!f) {
        rest.push(problem);
        continue;
      }
      const what = where === f.name ? problem.slice(problem.indexOf(":") + 1).trim() : problem;
      f.problem.append(h("span", {}, what));
      f.problem.hidden = false;
      f.input.setAttribute("aria-invalid", "true");
    }
    general.replaceChildren(
      message ? h("p", {}, message) : "",
      rest.length ? h("ul", {}, rest.map((p) => h("li", {}, p))) : "",
    );
    general.hidden = !message && !rest.length;
  }

  /** Why the raw JSON cannot go back into the fields, or null when it can. */
  function unfit({ value, problems }) {
    if (problems.length) return problems[0];
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      return "Only a JSON object can be edited field by field.";
    }
    const unknown = Object.keys(value).filter((k) => !byName.has(k));
    if (!unknown.length) return null;
    return `The form has no field for ${unknown.join(", ")}; edit it as raw JSON.`;
  }

  function switchMode() {
    showProblems([]);
    if (toggle.checked) {
      raw.value = JSON.stringify(readFields().value, null, 2);
    } else {
      const parsed = readRaw();
      const why = unfit(parsed);
      if (why) {
        toggle.checked = true; // stay on the raw JSON: the fields cannot hold it
        showProblems([why]);
        return;
      }
      for (const f of fields) write(f, parsed.value[f.name]);
    }
    fieldset.hidden = toggle.checked;
    raw.hidden = !toggle.checked;
  }

  toggle.addEventListener("change", switchMode);
  if (!fields.length) {
    toggle.checked = true; // a task that is no object of properties: JSON is the only way
    switchMode();
  }
  const element = h(
    "div",
    { class: "schema-form" },
    h("span", { class: "field" }, toggle, h("label", { for: "raw-task-toggle" }, "Raw JSON")),
    fieldset,
    h("label", { for: "raw-task", class: "visually-hidden" }, "Task as JSON"),
    raw,
    general,
  );
  function readForm() {
    const { value, problems } = toggle.checked ? readRaw() : readFields();
    return problems.length ? { problems } : { value };
  }
  return { element, read: readForm, showProblems };
}
