// Shared pieces of the page: API calls with readable errors, safe DOM building, track lists.

export const state = {
  keys: { ingest: "", admin: "" },
  devKeys: null,
  user: "",
  // The latest list shown (Discover or Mood search), highlighted on the mood map.
  results: null,
};

const KEYS_STORE = "encore.keys";

export function loadKeys() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEYS_STORE) || "null");
    if (saved) {
      state.keys = { ingest: saved.ingest || "", admin: saved.admin || "" };
      return true;
    }
  } catch {
    // unreadable storage: behave as if nothing was saved
  }
  return false;
}

export function saveKeys(keys) {
  state.keys = { ingest: keys.ingest || "", admin: keys.admin || "" };
  localStorage.setItem(KEYS_STORE, JSON.stringify(state.keys));
}

export function forgetKeys() {
  localStorage.removeItem(KEYS_STORE);
  state.keys = state.devKeys ? { ...state.devKeys } : { ingest: "", admin: "" };
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const loc = (d.loc || []).filter((p) => !["body", "query", "path"].includes(p));
        return (loc.length ? `${loc.join(".")}: ` : "") + (d.msg || JSON.stringify(d));
      })
      .join("; ");
  }
  return JSON.stringify(detail);
}

// Call the API. `key` names the key to send ("ingest", "admin" or null). Resolves to
// {data, ms}; rejects with an ApiError whose message carries the server's `detail`.
export async function api(path, { method = "GET", json, form, key = "ingest" } = {}) {
  const headers = { Accept: "application/json" };
  const secret = key ? state.keys[key] : "";
  if (secret) headers["X-API-Key"] = secret;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  const started = performance.now();
  let resp;
  try {
    resp = await fetch(path, { method, headers, body });
  } catch (err) {
    throw new ApiError(0, `The server did not answer (${err.message}). Is Encore still running?`);
  }
  const ms = performance.now() - started;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const why =
      data && data.detail !== undefined ? detailText(data.detail) : text.slice(0, 300);
    let hint = "";
    if (resp.status === 401) {
      hint = ` Set the ${key === "admin" ? "admin" : "ingest"} key under “Keys”.`;
    }
    const route = path.split("?")[0];
    throw new ApiError(
      resp.status,
      `${method} ${route} answered ${resp.status}: ${why || resp.statusText}.${hint}`,
    );
  }
  return { data, ms };
}

// Build an element. Text children are set as text (never parsed as HTML).
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k === "className" ? "class" : k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const trackHref = (id) => `#track/${enc(id)}`;
export const radioHref = (id) => `#radio/${enc(id)}`;

export function signed(x, digits = 2) {
  if (typeof x !== "number" || !Number.isFinite(x)) return "–";
  return (x > 0 ? "+" : "") + x.toFixed(digits);
}

export function showError(box, err) {
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

export function clearError(box) {
  box.textContent = "";
  box.hidden = true;
}

export function newEventId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// POST one play, like or skip. `context` links it to the recommendation that showed it.
export function sendEvent(kind, trackId, context) {
  const event = {
    type: kind,
    event_id: newEventId(),
    occurred_at: new Date().toISOString(),
    user_id: state.user,
    track_id: trackId,
  };
  if (context) event.context = context;
  if (kind === "play") Object.assign(event, { ms_played: 180000, completion: 1.0 });
  if (kind === "skip") event.ms_played = 4000;
  return api("/v1/events", { method: "POST", json: event });
}

export function linkBadge(status) {
  const st = String(status || "unknown");
  const cls = st.replace(/[^a-z_]/g, "");
  return h("span", { class: `badge link-${cls}`, title: "Health of the audio link" }, `link ${st}`);
}

// One track row. `actions(item, i)` returns buttons; `change` marks how the row moved.
export function trackRow(item, i, { actions, change } = {}) {
  const mood = item.mood
    ? h("span", { class: "moodtag" }, `valence ${signed(item.mood.valence)} · arousal ${signed(item.mood.arousal)}`)
    : null;
  return h(
    "li",
    { class: "track", dataset: { trackId: item.track_id, artist: item.artist || "" } },
    h("span", { class: "pos", "aria-hidden": "true" }, String(i + 1)),
    h(
      "div",
      { class: "what" },
      h("a", { class: "title", href: trackHref(item.track_id) }, item.title || item.track_id),
      h("span", { class: "by" }, item.artist || "unknown artist", item.genre ? ` · ${item.genre}` : ""),
      item.reason ? h("span", { class: "reason" }, item.reason) : null,
      mood,
    ),
    h(
      "div",
      { class: "side" },
      change ? h("span", { class: `change ${change.kind}`, title: change.title }, change.text) : null,
      item.link !== undefined ? linkBadge(item.link) : null,
    ),
    actions ? h("div", { class: "acts" }, actions(item, i)) : null,
  );
}

// Fill an <ol> with track rows; `changeOf(item, i)` may mark how each row moved.
export function fillList(ol, items, { actions, changeOf, empty } = {}) {
  ol.replaceChildren(
    ...items.map((it, i) => trackRow(it, i, { actions, change: changeOf ? changeOf(it, i) : null })),
  );
  if (!items.length) ol.append(h("li", { class: "empty" }, empty || "Nothing to show."));
}

// A signed value in [-1, 1] as a bar growing from the middle.
export function scale(label, value, low, high) {
  const v = Math.max(-1, Math.min(1, Number(value) || 0));
  const fill = h("span", { class: `fill ${v < 0 ? "neg" : "pos"}` });
  fill.style.left = `${50 + Math.min(v, 0) * 50}%`;
  fill.style.width = `${Math.abs(v) * 50}%`;
  return h(
    "div",
    { class: "scale-row" },
    h("span", { class: "scale-label" }, label),
    h("strong", { class: "scale-value", dataset: { value: String(value) } }, signed(value)),
    h("span", { class: "scale", "aria-hidden": "true" }, fill, h("span", { class: "mid" })),
    h("span", { class: "scale-ends meta" }, `${low} – ${high}`),
  );
}

// A small line chart of recent values (no axes; the latest value is in the label).
export function sparkline(values, { label, min, max, width = 120, height = 28 } = {}) {
  const vals = values.filter((v) => Number.isFinite(v));
  const lo = min ?? Math.min(0, ...vals);
  const hi = max ?? Math.max(1e-9, ...vals);
  const span = hi - lo || 1;
  const step = width / Math.max(values.length - 1, 1);
  const pts = values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - ((v - lo) / span) * (height - 4)).toFixed(1)}`)
    .join(" ");
  const last = vals.length ? vals[vals.length - 1] : null;
  const text = `${label}: ${vals.length} samples, latest ${last === null ? "none" : +last.toFixed(4)}`;
  return s(
    "svg",
    { class: "spark", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": text },
    s("title", {}, text),
    values.length > 1 ? s("polyline", { points: pts }) : null,
    values.length ? s("circle", { cx: ((values.length - 1) * step).toFixed(1), cy: pts.split(" ").pop().split(",")[1], r: 2.5 }) : null,
  );
}

// Replace an element's children, leaving out null, undefined and false.
export function put(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}
