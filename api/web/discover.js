// Discover: a listener's recommendations; play, like and skip send real events and the
// list is fetched again once the stream worker has folded the event in.

import { $, api, clearError, enc, fillList, h, sendEvent, showError, sleep, state } from "./lib.js";

const SUGGESTED = ["demo:u1", "demo:u2", "demo:u3", "demo:u4", "demo:u5"];
const N = 20;
const VERBS = { play: "Played", like: "Liked", skip: "Skipped" };
const DEGRADED = {
  no_collab_model: "no collaborative model is published yet (train the models)",
  redis_unavailable: "Redis, where listener state lives, did not answer",
  redis_not_configured: "this API has no Redis configured",
};
let current = null; // the latest response: {data, ms}
let busy = false;

export function init() {
  $("user-form").addEventListener("submit", (e) => {
    e.preventDefault();
    selectUser($("user-id").value.trim());
  });
  const chips = $("user-chips");
  for (const id of SUGGESTED) {
    chips.append(h("button", { type: "button", class: "chip", onclick: () => selectUser(id) }, id));
    $("user-suggestions").append(h("option", { value: id }));
  }
  chips.append(
    h("button", { type: "button", class: "chip", onclick: () => selectUser(newListener()) }, "a new listener"),
  );
  $("recs-refresh").addEventListener("click", () => load());
  $("recs").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-act]");
    if (btn) act(btn.dataset.act, Number(btn.dataset.index));
  });
}

export function show() {
  if (!state.user) {
    const saved = localStorage.getItem("encore.user");
    if (saved) selectUser(saved);
  }
}

function newListener() {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return "listener-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function selectUser(id) {
  const box = $("discover-error");
  if (!id) return showError(box, "Type a listener id, or pick one of the suggestions.");
  if (/\s/.test(id) || id.length > 128) {
    return showError(box, "A listener id is 1 to 128 characters without spaces.");
  }
  state.user = id;
  localStorage.setItem("encore.user", id);
  $("user-id").value = id;
  $("recs-heading").textContent = `Recommendations for ${id}`;
  $("playlist-link").href = `/v1/users/${enc(id)}/playlist.xspf?n=25`;
  $("rec-change").textContent = "";
  current = null;
  await load();
}

function fetchRecs() {
  return api(`/v1/users/${enc(state.user)}/recommendations?n=${N}&context=web`);
}

async function load() {
  const box = $("discover-error");
  try {
    const resp = await fetchRecs();
    clearError(box);
    render(resp, null);
  } catch (err) {
    showError(box, err);
  }
}

function actions(item, i) {
  const label = `${item.title || item.track_id} by ${item.artist || "unknown artist"}`;
  return ["play", "like", "skip"].map((kind) =>
    h(
      "button",
      { type: "button", class: `act act-${kind}`, dataset: { act: kind, index: String(i) }, "aria-label": `${kind} ${label}` },
      { play: "▶ Play", like: "♥ Like", skip: "» Skip" }[kind],
    ),
  );
}

function render(resp, before) {
  current = resp;
  const d = resp.data;
  const server = Object.values(d.timings_ms || {}).reduce((a, b) => a + b, 0);
  const meta = $("rec-meta");
  meta.replaceChildren();
  meta.append(
    "arm ",
    h("strong", { id: "rec-arm" }, d.arm),
    " · ",
    h("span", { id: "rec-latency" }, `${Math.round(resp.ms)} ms`),
    ` (${server.toFixed(1)} ms in the server) · ${d.session.events} events in this listener's state`,
  );
  if (d.degraded) meta.append(h("span", { class: "warn" }, ` · degraded: ${d.degraded_reasons.join(", ")}`));
  const previous = new Map((before || []).map((it, i) => [it.track_id, i]));
  fillList($("recs"), d.items, {
    actions,
    changeOf: before ? (it, i) => movement(previous.get(it.track_id), i) : null,
    empty: d.degraded
      ? `No recommendations yet: ${d.degraded_reasons.map((r) => DEGRADED[r] || r).join("; ")}.`
      : "No recommendations yet: the catalog is still loading, or nothing is trending.",
  });
  $("discover-body").hidden = false;
  state.results = { label: `recommendations for ${state.user}`, items: d.items, mood: null };
}

function movement(was, now) {
  if (was === undefined) return { kind: "new", text: "new", title: "new in the list" };
  if (was > now) return { kind: "up", text: `▲${was - now}`, title: `up ${was - now}` };
  if (was < now) return { kind: "down", text: `▼${now - was}`, title: `down ${now - was}` };
  return null;
}

async function act(kind, index) {
  if (busy || !current) return;
  const box = $("discover-error");
  if (!state.keys.ingest) {
    return showError(box, "Sending events needs the ingest key: open “Keys” at the top.");
  }
  const base = current.data;
  const item = base.items[index];
  const row = $("recs").children[index];
  busy = true;
  row.classList.add("pending");
  for (const b of $("recs").querySelectorAll("button")) b.disabled = true;
  const note = $("rec-change");
  note.textContent = `${VERBS[kind]} “${item.title}”: sending the event…`;
  try {
    await sendEvent(kind, item.track_id, { rec_id: base.rec_id, arm: base.arm, position: index, source: "web" });
    clearError(box);
    note.textContent = `${VERBS[kind]} “${item.title}”: waiting for the stream worker…`;
    const started = performance.now();
    let next = null;
    let applied = false;
    for (let i = 0; i < 24 && !applied; i++) {
      await sleep(i === 0 ? 100 : 250);
      next = await fetchRecs();
      applied = next.data.session.events > base.session.events;
    }
    const hadFocus = $("recs").contains(document.activeElement) || document.activeElement === document.body;
    render(next, base.items);
    if (hadFocus) {
      const rows = $("recs").children;
      const same = rows[Math.min(index, rows.length - 1)];
      const btn = same && same.querySelector(`button[data-act="${kind}"]`);
      if (btn) btn.focus();
    }
    note.textContent = describe(kind, item, base.items, next.data.items, applied, performance.now() - started);
  } catch (err) {
    showError(box, err);
    note.textContent = "";
    for (const b of $("recs").querySelectorAll("button")) b.disabled = false;
    row.classList.remove("pending");
  } finally {
    busy = false;
  }
}

function firstOf(items, artist) {
  const i = items.findIndex((it) => it.artist === artist);
  return i < 0 ? null : i + 1;
}

function describe(kind, item, before, after, applied, ms) {
  const parts = [`${VERBS[kind]} “${item.title}” by ${item.artist}.`];
  if (!applied) {
    parts.push("The event was accepted but not applied within 6 s: is a stream worker running?");
    return parts.join(" ");
  }
  parts.push(`Applied by the stream worker in ${(ms / 1000).toFixed(1)} s.`);
  if (!after.some((it) => it.track_id === item.track_id)) parts.push("It left the list.");
  const was = firstOf(before, item.artist);
  const now = firstOf(after, item.artist);
  if (item.artist && was !== now) {
    parts.push(now === null ? `${item.artist} is no longer in the list.` : `${item.artist}: #${was} → #${now}.`);
  }
  const known = new Set(before.map((it) => it.track_id));
  const fresh = after.filter((it) => !known.has(it.track_id)).length;
  if (fresh) parts.push(`${fresh} new track${fresh > 1 ? "s" : ""}.`);
  return parts.join(" ");
}
