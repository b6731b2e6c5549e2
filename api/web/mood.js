// Mood search (free text -> detected valence/arousal and results) and the mood map.

import { $, api, clearError, fillList, h, s, scale, showError, signed, state, trackHref } from "./lib.js";

const EXAMPLES = ["rainy sunday", "pump me up", "calm music to fall asleep", "i miss my ex", "some jazz please"];
const REASONS = {
  no_content_model: "No content model is loaded yet, so free-text search has nothing to search. Publish one (train the models), then try again.",
  text_model_not_installed: "The API process has no text model installed, so it cannot read free text (install the ml extra).",
};
const SIZE = 600;
const PAD = 44;
let catalog = null; // [{track_id, title, artist, genre, valence, arousal}]
let catalogMood = new Map();

export function init() {
  $("mood-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("mood-query").value.trim());
  });
  for (const q of EXAMPLES) {
    $("mood-chips").append(
      h("button", { type: "button", class: "chip", onclick: () => { $("mood-query").value = q; search(q); } }, q),
    );
  }
}

async function search(query) {
  const box = $("mood-error");
  if (!query) return showError(box, "Describe a mood, an activity, a genre or an artist first.");
  $("mood-meta").textContent = "Searching…";
  try {
    const { data, ms } = await api("/v1/recommend", { method: "POST", json: { query, top_k: 20 } });
    clearError(box);
    if (!data.mood_detected) {
      const why = data.degraded_reasons.map((r) => REASONS[r] || r).join(" ");
      $("mood-body").hidden = true;
      return showError(box, why || "The server could not interpret the query.");
    }
    renderDetected(data);
    $("mood-meta").textContent =
      `${data.items.length} tracks · query type ${data.query_type} · ${Math.round(ms)} ms` +
      (data.degraded ? ` · degraded: ${data.degraded_reasons.join(", ")}` : "");
    fillList($("mood-results"), data.items, { empty: "No tracks matched." });
    $("mood-body").hidden = false;
    state.results = { label: `mood search “${query}”`, items: data.items, mood: data.mood_detected, query };
  } catch (err) {
    $("mood-meta").textContent = "";
    showError(box, err);
  }
}

function renderDetected(data) {
  const m = data.mood_detected;
  const words = m.words && m.words.length ? `from the words ${m.words.map((w) => `“${w}”`).join(", ")}` : `by ${m.source}`;
  $("mood-detected").replaceChildren(
    h("h2", {}, "Detected mood: ", h("span", { id: "mood-label" }, m.label || "neutral")),
    h("div", { id: "mood-valence" }, scale("valence", m.valence, "unpleasant", "pleasant")),
    h("div", { id: "mood-arousal" }, scale("arousal", m.arousal, "calm", "energetic")),
    h("p", { class: "meta" }, `Read ${words} (${m.source}).`),
  );
}

export async function showMap() {
  const box = $("map-error");
  try {
    if (!catalog) {
      const { data } = await api("/v1/catalog/moods?limit=2000");
      catalog = data;
      catalogMood = new Map(data.map((t) => [t.track_id, t]));
    }
    clearError(box);
  } catch (err) {
    showError(box, err);
  }
  draw($("mood-map"), catalog || []);
}

// A stable small offset per track so tracks with the same mood do not hide each other.
function jitter(id) {
  let x = 2166136261;
  for (let i = 0; i < id.length; i++) x = Math.imul(x ^ id.charCodeAt(i), 16777619);
  return [((x & 0xffff) / 0xffff - 0.5) * 0.1, (((x >>> 16) & 0xffff) / 0xffff - 0.5) * 0.1];
}

const px = (v) => PAD + ((v + 1) / 2) * (SIZE - 2 * PAD);
const py = (a) => SIZE - PAD - ((a + 1) / 2) * (SIZE - 2 * PAD);

function hue(genre) {
  let x = 0;
  for (const c of genre || "?") x = (x * 31 + c.charCodeAt(0)) % 360;
  return x;
}

function point(t) {
  const [dx, dy] = jitter(t.track_id);
  return [px(Math.max(-1, Math.min(1, t.valence + dx))), py(Math.max(-1, Math.min(1, t.arousal + dy)))];
}

function draw(svg, tracks) {
  const mid = SIZE / 2;
  const frame = s(
    "g",
    { class: "frame" },
    s("rect", { x: PAD, y: PAD, width: SIZE - 2 * PAD, height: SIZE - 2 * PAD }),
    s("line", { x1: PAD, y1: mid, x2: SIZE - PAD, y2: mid }),
    s("line", { x1: mid, y1: PAD, x2: mid, y2: SIZE - PAD }),
    s("text", { x: mid, y: SIZE - 14, "text-anchor": "middle" }, "valence: unpleasant → pleasant"),
    s("text", { x: 18, y: mid, "text-anchor": "middle", transform: `rotate(-90 18 ${mid})` }, "arousal: calm → energetic"),
    s("text", { class: "quadrant", x: PAD + 8, y: PAD + 20 }, "tense · angry"),
    s("text", { class: "quadrant", x: SIZE - PAD - 8, y: PAD + 20, "text-anchor": "end" }, "happy · excited"),
    s("text", { class: "quadrant", x: PAD + 8, y: SIZE - PAD - 10 }, "sad · gloomy"),
    s("text", { class: "quadrant", x: SIZE - PAD - 8, y: SIZE - PAD - 10, "text-anchor": "end" }, "calm · relaxed"),
  );
  const dots = s("g", { class: "catalog", "aria-hidden": "true" });
  for (const t of tracks) {
    const [x, y] = point(t);
    dots.append(
      s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: `hsl(${hue(t.genre)} 55% 55%)` },
        s("title", {}, `${t.title} — ${t.artist} (${t.genre || "no genre"}): valence ${signed(t.valence)}, arousal ${signed(t.arousal)}`)),
    );
  }
  const res = state.results;
  const hits = s("g", { class: "hits" });
  const listed = [];
  for (const [i, it] of (res ? res.items : []).entries()) {
    const m = it.mood || catalogMood.get(it.track_id);
    if (!m) continue;
    const [x, y] = point({ track_id: it.track_id, valence: m.valence, arousal: m.arousal });
    const label = `#${i + 1} ${it.title} — ${it.artist}`;
    hits.append(
      s("a", { href: trackHref(it.track_id), "aria-label": label },
        s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 7 }),
        i < 3 ? s("text", { x: (x + 9).toFixed(1), y: (y + 4).toFixed(1) }, String(i + 1)) : null,
        s("title", {}, label)),
    );
    listed.push(h("li", { value: String(i + 1) }, h("a", { href: trackHref(it.track_id) }, it.title || it.track_id), ` — ${it.artist} `,
      h("span", { class: "meta" }, `(${signed(m.valence)}, ${signed(m.arousal)})`)));
  }
  const query = s("g", { class: "query" });
  if (res && res.mood) {
    const x = px(res.mood.valence);
    const y = py(res.mood.arousal);
    query.append(
      s("circle", { id: "map-query", cx: x.toFixed(1), cy: y.toFixed(1), r: 16 }),
      s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3 }),
      s("text", { x: (x > mid ? x - 20 : x + 20).toFixed(1), y: (y - 20).toFixed(1), "text-anchor": x > mid ? "end" : "start" },
        `“${res.query}”`),
    );
  }
  svg.replaceChildren(frame, dots, hits, query);
  const what = res ? `Highlighted: ${res.label}.` : "Run a mood search or open Discover to highlight a list.";
  $("map-title").textContent = `${tracks.length} catalog tracks (positions spread slightly so equal moods stay visible). ${what}`;
  $("map-results").replaceChildren(...(listed.length ? listed : [h("li", { class: "meta" }, "Nothing highlighted yet.")]));
}
