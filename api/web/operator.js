// Operator panel: polls /v1/admin/status with the admin key; lag, apply rate, dead
// letters (redrive), artifact versions (retrain), bandit arm shares and reward rates,
// the latest off-policy estimates (`encore ope`) beside the live reward rates, and the
// processes `encore up` supervises (state, restarts, last exit).

import { $, api, clearError, h, put, showError, sparkline, state } from "./lib.js";

const INTERVAL_MS = 2000;
const KEEP = 60; // samples per sparkline (two minutes)
let timer = null;
let paused = false;
let visible = false;
let previous = null; // {time, applied: {topic:p -> n}}
const history = { rate: [], share: {}, mean: {} };

export function init() {
  $("ops-pause").addEventListener("click", () => {
    paused = !paused;
    $("ops-pause").setAttribute("aria-pressed", String(paused));
    $("ops-pause").textContent = paused ? "Resume polling" : "Pause polling";
    schedule();
  });
  $("ops-redrive").addEventListener("click", redrive);
  $("ops-retrain").addEventListener("click", retrain);
  document.addEventListener("visibilitychange", schedule);
}

export function active(on) {
  visible = on;
  schedule();
}

function schedule() {
  const run = visible && !paused && !document.hidden;
  if (run && !timer) {
    poll();
    timer = setInterval(poll, INTERVAL_MS);
  } else if (!run && timer) {
    clearInterval(timer);
    timer = null;
  }
}

function push(list, value) {
  list.push(value);
  if (list.length > KEEP) list.shift();
}

async function poll() {
  const box = $("ops-error");
  if (!state.keys.admin) return showError(box, "The operator panel needs the admin key: open “Keys” at the top.");
  try {
    const { data, ms } = await api("/v1/admin/status", { key: "admin" });
    clearError(box);
    render(data, ms);
  } catch (err) {
    showError(box, err);
  }
}

function table(head, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", {}, caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)),
  );
}

function render(d, ms) {
  const when = new Date(d.time * 1000).toLocaleTimeString();
  $("ops-meta").textContent = `Generation ${d.generation ?? "–"} · Redis ${d.redis || "ok"} · updated ${when} (${Math.round(ms)} ms) · every ${INTERVAL_MS / 1000} s`;
  if (d.redis) showError($("ops-error"), `Redis: ${d.redis}`);
  renderStream(d);
  renderDead(d.dead_letters || {});
  renderProcs(d.supervisor);
  renderArtifacts(d.artifacts || {}, d.artifact_failures || {});
  renderBandit(d.bandit || {}, d.arm_pulls || {});
  renderOpe(d.ope, d.bandit || {});
}

function renderStream(d) {
  const applied = d.records_applied || {};
  const lag = d.lag || {};
  const total = Object.values(applied).reduce((a, b) => a + b, 0);
  let rate = null;
  if (previous && d.time > previous.time) {
    const before = Object.values(previous.applied).reduce((a, b) => a + b, 0);
    rate = Math.max(0, (total - before) / (d.time - previous.time));
    push(history.rate, rate);
  }
  previous = { time: d.time, applied };
  const topics = new Map();
  for (const key of new Set([...Object.keys(applied), ...Object.keys(lag)])) {
    const cut = key.lastIndexOf(":");
    const topic = key.slice(0, cut);
    if (!topics.has(topic)) topics.set(topic, new Map());
    topics.get(topic).set(Number(key.slice(cut + 1)), key);
  }
  const parts = [...new Set([...topics.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
  const rows = [...topics.entries()].map(([topic, byPart]) =>
    h("tr", {}, h("th", { scope: "row" }, topic),
      parts.map((p) => {
        const key = byPart.get(p);
        const l = key in lag ? lag[key] : null;
        return h("td", { class: l ? "lag-high" : "", title: `${key}: ${applied[key] ?? 0} records applied` },
          l === null ? "–" : String(l), h("span", { class: "sub" }, String(applied[key] ?? 0)));
      })),
  );
  put($("ops-stream"),
    h("p", { class: "big" }, h("span", { id: "ops-rate" }, rate === null ? "…" : rate.toFixed(1)), " records/s applied ",
      sparkline(history.rate, { label: "records applied per second" })),
    h("p", { class: "meta" }, `${total} records applied in all (a record is one event or a batch of events).`),
    rows.length
      ? table(["topic", ...parts.map((p) => `p${p}`)], rows, "Lag per partition (records behind; small: applied)")
      : h("p", { class: "meta" }, "Nothing applied yet."),
    Object.keys(lag).length ? null : h("p", { class: "meta" }, "No worker has reported lag yet."),
  );
}

function renderDead(dead) {
  const entries = Object.entries(dead).sort((a, b) => b[1] - a[1]);
  const sum = entries.reduce((a, [, n]) => a + n, 0);
  put($("ops-dlq"),
    h("p", { class: "big" }, h("span", { id: "ops-dead-total" }, String(sum)), " dead letters"),
    entries.length
      ? table(["topic / reason", "count"], entries.map(([k, n]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(n)))))
      : h("p", { class: "meta" }, "None: every record decoded and validated."),
  );
}

function renderProcs(sup) {
  if (!sup) {
    put($("ops-procs"), h("p", { class: "meta" }, "Not started by encore up: nothing supervised here."));
    return;
  }
  const rows = sup.children.map((c) =>
    h("tr", {}, h("th", { scope: "row" }, c.name),
      h("td", { class: c.state === "running" ? "" : "lag-high" }, c.state),
      h("td", {}, String(c.restarts)),
      h("td", { class: c.last_exit ? "" : "meta" }, c.last_exit || "–"),
      h("td", { class: "meta" }, c.last_restart_at ? new Date(c.last_restart_at * 1000).toLocaleTimeString() : "–")));
  put($("ops-procs"), table(["process", "state", "restarts", "last exit", "last restart"], rows));
}

function renderArtifacts(versions, failures) {
  const rows = Object.entries(versions).map(([kind, v]) =>
    h("tr", {}, h("th", { scope: "row" }, kind), h("td", { class: v ? "" : "meta" }, v || "not published")));
  put($("ops-artifacts"),
    table(["kind", "version in use"], rows),
    ...Object.entries(failures).map(([kind, why]) => h("p", { class: "error" }, `${kind}: refused the newest version: ${why}`)),
  );
}

function renderBandit(bandit, pulls) {
  const arms = [...new Set([...Object.keys(bandit), ...Object.keys(pulls)])].sort();
  const totalPulls = arms.reduce((a, arm) => a + (pulls[arm] || 0), 0);
  const rows = arms.map((arm) => {
    const share = totalPulls ? (pulls[arm] || 0) / totalPulls : 0;
    const mean = bandit[arm] ? bandit[arm].mean : null;
    history.share[arm] ||= [];
    history.mean[arm] ||= [];
    push(history.share[arm], share);
    if (mean !== null) push(history.mean[arm], mean);
    return h("tr", {},
      h("th", { scope: "row" }, arm),
      h("td", {}, `${Math.round(share * 100)}% `, h("span", { class: "sub" }, `${pulls[arm] || 0} pulls`),
        sparkline(history.share[arm], { label: `${arm} share of requests`, min: 0, max: 1 })),
      h("td", {}, mean === null ? "–" : mean.toFixed(3), " ",
        h("span", { class: "sub" }, bandit[arm] ? `${bandit[arm].feedback} feedback` : ""),
        sparkline(history.mean[arm], { label: `${arm} reward rate`, min: 0, max: 1 })));
  });
  put($("ops-bandit"),
    rows.length
      ? table(["arm", "share of requests", "reward rate"], rows, "Shares count requests served by this API process")
      : h("p", { class: "meta" }, "No bandit state yet."),
  );
}

function estimateCell(e) {
  if (!e || e.value === null) return h("td", { class: "meta" }, "–");
  return h("td", {}, e.value.toFixed(3), h("span", { class: "sub" }, `[${e.low.toFixed(3)}, ${e.high.toFixed(3)}]`));
}

function renderOpe(ope, bandit) {
  const box = $("ops-ope");
  if (!ope) return put(box, h("p", { class: "meta" }, "No off-policy estimates yet: run “encore ope”."));
  if (ope.error) return put(box, h("p", { class: "error" }, `Off-policy estimates: ${ope.error}`));
  const arms = [...new Set([...Object.keys(ope.arms || {}), ...Object.keys(bandit)])].sort();
  const rows = arms.map((arm) => {
    const e = (ope.arms || {})[arm] || {};
    const live = bandit[arm] ? bandit[arm].mean.toFixed(3) : "–";
    return h("tr", {},
      h("th", { scope: "row" }, arm),
      h("td", {}, live, h("span", { class: "sub" }, "per feedback")),
      h("td", {}, String(e.lists ?? 0), h("span", { class: "sub" }, `ESS ${Math.round(e.ess ?? 0)}`)),
      estimateCell(e.ips), estimateCell(e.snips), estimateCell(e.dr));
  });
  const when = new Date(ope.computed_at).toLocaleString();
  put(box,
    table(["arm", "live reward rate", "logged lists", "IPS", "SNIPS", "DR"], rows,
      `Off-policy estimates of “always this arm” (encore ope, ${when}): reward per served track, 95% intervals; ` +
      `${ope.lists} lists, ${ope.feedback_joined} feedback`),
  );
}

async function redrive() {
  const status = $("ops-redrive-status");
  status.textContent = "Redriving…";
  try {
    const { data } = await api("/v1/admin/dlq/redrive", { method: "POST", key: "admin" });
    const left = Object.entries(data.reasons_left || {}).map(([k, n]) => `${k} ${n}`).join(", ");
    status.textContent = `Sent ${data.sent} back to their topics; ${data.still_invalid} still invalid${left ? ` (${left})` : ""}.`;
  } catch (err) {
    status.textContent = err.message;
  }
}

async function retrain() {
  const status = $("ops-retrain-status");
  status.textContent = "Starting…";
  try {
    const { data } = await api("/v1/admin/retrain", { method: "POST", key: "admin" });
    status.textContent = data.status === "running"
      ? `A retraining is already running (pid ${data.pid}).`
      : `Retraining started (pid ${data.pid}); new versions show above once published.`;
  } catch (err) {
    status.textContent = err.message;
  }
}
