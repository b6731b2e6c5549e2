// Entry point: keys, readiness, and the hash router (#discover, #mood, #map,
// #track/<id>, #radio/<artist>, #identify, #operator).

import * as discover from "./discover.js";
import { $, api, forgetKeys, loadKeys, saveKeys, state } from "./lib.js";
import * as mood from "./mood.js";
import * as operator from "./operator.js";
import * as track from "./track.js";

const ROUTES = {
  discover: { view: "discover", title: "Discover", show: () => discover.show() },
  mood: { view: "mood", title: "Mood search", show: () => {} },
  map: { view: "map", title: "Mood map", show: () => mood.showMap() },
  track: { view: "track", title: "Track", show: (arg) => track.showTrack(arg) },
  radio: { view: "track", nav: "track", title: "Artist radio", show: (arg) => track.showRadio(arg) },
  identify: { view: "identify", title: "Identify", show: () => {} },
  operator: { view: "operator", title: "Operator panel", show: () => {} },
};
let routed = false;

function route() {
  const raw = location.hash.slice(1);
  if (raw === "main") return; // the skip link
  const cut = raw.indexOf("/");
  const name = cut < 0 ? raw : raw.slice(0, cut);
  let arg = "";
  try {
    arg = cut < 0 ? "" : decodeURIComponent(raw.slice(cut + 1));
  } catch {
    arg = raw.slice(cut + 1);
  }
  const key = ROUTES[name] ? name : "discover";
  const r = ROUTES[key];
  for (const sec of document.querySelectorAll("[data-view]")) sec.hidden = sec.dataset.view !== r.view;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === (r.nav || key)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${r.title} · Encore`;
  operator.active(key === "operator");
  r.show(arg);
  if (routed) {
    // move keyboard and screen-reader focus to the new view's heading
    const heading = document.querySelector(`[data-view="${r.view}"] h1`);
    if (heading) heading.focus({ preventScroll: false });
  }
  routed = true;
}

function showKeys() {
  $("key-ingest").value = state.keys.ingest;
  $("key-admin").value = state.keys.admin;
  $("keys-dev").hidden = !state.devKeys;
}

function initKeys(saved) {
  const panel = $("keys");
  const toggle = $("keys-toggle");
  toggle.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) {
      showKeys();
      $("key-ingest").focus();
    }
  });
  $("keys-form").addEventListener("submit", (e) => {
    e.preventDefault();
    saveKeys({ ingest: $("key-ingest").value.trim(), admin: $("key-admin").value.trim() });
    $("keys-status").textContent = "Saved in this browser.";
  });
  $("keys-dev").addEventListener("click", () => {
    state.keys = { ...state.devKeys };
    showKeys();
    $("keys-status").textContent = "Using the development keys (not saved).";
  });
  $("keys-forget").addEventListener("click", () => {
    forgetKeys();
    showKeys();
    $("keys-status").textContent = "Forgotten.";
  });
  if (!saved && state.devKeys) {
    state.keys = { ...state.devKeys };
    $("keys-status").textContent = "Using the development keys this server offers.";
  } else if (!saved) {
    $("keys-status").textContent = "No keys yet: enter them to send events or see the operator panel.";
  }
  showKeys();
}

async function readiness() {
  const el = $("health");
  try {
    const resp = await fetch("/readyz", { headers: { Accept: "application/json" } });
    const body = await resp.json();
    const c = body.checks || {};
    const missing = Object.entries(c.artifacts || {}).filter(([k, ok]) => !ok && k !== "fingerprint").map(([k]) => k);
    const why = [!c.redis && "Redis unreachable", missing.length && `models missing: ${missing.join(", ")}`, c.lag > 0 && `lag ${c.lag}`]
      .filter(Boolean).join(", ");
    el.textContent = body.ready ? (c.lag ? `ready · lag ${c.lag}` : "ready") : `not ready: ${why || "starting"}`;
    el.className = `health ${body.ready ? "ok" : "bad"}`;
  } catch {
    el.textContent = "API unreachable";
    el.className = "health bad";
  }
}

async function main() {
  const saved = loadKeys();
  try {
    const { data } = await api("/v1/ui/config", { key: null });
    state.devKeys = data.dev_keys;
  } catch {
    state.devKeys = null;
  }
  initKeys(saved);
  discover.init();
  mood.init();
  track.init();
  operator.init();
  window.addEventListener("hashchange", route);
  document.querySelector(".skip-link").addEventListener("click", (e) => {
    e.preventDefault();
    $("main").focus();
  });
  route();
  readiness();
  setInterval(readiness, 10000);
  document.body.dataset.ready = "true";
}

main();
