// The taskloom HTTP API from the browser: the key, JSON requests, errors, the SSE stream.

const KEY_ITEM = "taskloom.key";

/** The signed-in key (kept in sessionStorage: gone when the tab closes) and its /api/me. */
export const session = {
  me: null,
  get key() {
    return sessionStorage.getItem(KEY_ITEM);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY_ITEM, value);
    else sessionStorage.removeItem(KEY_ITEM);
  },
  clear() {
    this.key = null;
    this.me = null;
  },
};

/**
 * An error answer of the API: `status`, the body's `code`, its readable `message`, and
 * `problems` (a 422's "field: what is wrong" strings; empty otherwise).
 */
export class ApiError extends Error {
  constructor(status, code, message, problems = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.problems = problems;
  }
}

const ROLES = ["viewer", "labeler", "operator", "admin"];

/** Whether the signed-in key (`me` from /api/me) has `role` or a higher one. */
export function hasRole(me, role) {
  return ROLES.indexOf(me?.role) >= ROLES.indexOf(role);
}

let unauthorized = () => {};

/** Sets what happens on a 401 (the app signs out and shows the login view). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's page, say): fall back to the status line below.
  }
  let message = body?.message ?? `${response.status} ${response.statusText}`.trim();
  const problems = Array.isArray(body?.problems) ? body.problems.map(String) : [];
  if (problems.length && !message.includes(problems[0])) message += ` (${problems.join("; ")})`;
  return new ApiError(response.status, body?.error ?? "http_error", message, problems);
}

async function send(path, { method = "GET", body, signal, key, accept }) {
  const headers = { Accept: accept };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    return await fetch(path, {
      method,
      headers,
      signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", `Cannot reach the taskloom service (${error.message}).`);
  }
}

async function checked(response, signOutOn401) {
  if (response.ok) return response;
  const error = await errorOf(response);
  if (response.status === 401 && signOutOn401) unauthorized(error);
  throw error;
}

/**
 * Calls the API and returns the JSON body; throws ApiError with the body's message.
 * Options: method, body (sent as JSON), signal, key (default: the session's), and
 * signOutOn401 (default true; the login form checks a key without signing out).
 */
export async function api(path, options = {}) {
  const { key = session.key, signOutOn401 = true } = options;
  const response = await send(path, { ...options, key, accept: "application/json" });
  await checked(response, signOutOn401);
  return response.status === 204 ? null : response.json();
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // ": keep-alive" comments
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

/**
 * Reads a text/event-stream with fetch (EventSource cannot send the Authorization header),
 * calling onEvent({event, data}) per event until the server closes the stream.
 */
export async function streamEvents(path, { signal, onEvent }) {
  const response = await send(path, { signal, key: session.key, accept: "text/event-stream" });
  await checked(response, true);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    // Normalise line ends only up to the last complete one: a "\r" may end this chunk.
    buffer = buffer.replace(/\r\n|\r(?!$)/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) onEvent(event);
      end = buffer.indexOf("\n\n");
    }
  }
}
