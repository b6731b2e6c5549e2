// Track page (metadata, audio features, mood, link health, similar tracks, artist radio),
// an artist's radio, and Identify (an uploaded clip, then what to hear next).

import {
  $, api, clearError, enc, fillList, h, linkBadge, put, radioHref, scale, sendEvent, showError, state, trackHref,
} from "./lib.js";

export function init() {
  $("track-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("track-id").value.trim();
    if (id) location.hash = trackHref(id);
  });
  $("identify-form").addEventListener("submit", (e) => {
    e.preventDefault();
    identify();
  });
}

function fact(term, ...value) {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

function listSection(id, title, items, empty) {
  const ol = h("ol", { id, class: "tracks compact", "aria-label": title });
  fillList(ol, items, { empty });
  return [h("h2", {}, title), ol];
}

export async function showTrack(id) {
  const box = $("track-error");
  const body = $("track-body");
  $("track-id").value = id || "";
  if (!id) {
    $("track-heading").textContent = "Track";
    body.hidden = true;
    return showError(box, "Open a track from any list, or type its id above.");
  }
  $("track-heading").textContent = "Loading…";
  const [page, similar] = await Promise.allSettled([
    api(`/v1/tracks/${enc(id)}`),
    api(`/v1/tracks/${enc(id)}/similar?n=10`),
  ]);
  if (page.status === "rejected") {
    $("track-heading").textContent = "Track";
    body.hidden = true;
    return showError(box, page.reason);
  }
  clearError(box);
  const t = page.value.data;
  $("track-heading").textContent = t.title || t.track_id;
  const artistLink = () =>
    t.artist_key ? h("a", { href: radioHref(t.artist_key) }, t.artist || t.artist_key) : t.artist || "unknown";
  const link = t.link_health || { status: "unknown" };
  const linkFacts = Object.entries(link).filter(([k]) => k !== "status").map(([k, v]) => `${k} ${v}`).join(" · ");
  const facts = h(
    "dl",
    { class: "facts", id: "track-facts" },
    fact("Artist", artistLink()),
    t.album ? fact("Album", t.album) : null,
    t.genre ? fact("Genre", t.genre) : null,
    t.year ? fact("Year", String(t.year)) : null,
    t.tags && t.tags.length ? fact("Tags", t.tags.join(", ")) : null,
    t.duration_ms ? fact("Duration", `${Math.floor(t.duration_ms / 60000)}:${String(Math.round(t.duration_ms / 1000) % 60).padStart(2, "0")}`) : null,
    fact("Link health", linkBadge(link.status), linkFacts ? h("span", { class: "meta" }, ` ${linkFacts}`) : null),
    /^https?:\/\//.test(t.permalink_url || "") ? fact("Page", h("a", { href: t.permalink_url, rel: "noopener noreferrer", target: "_blank" }, t.permalink_url)) : null,
    fact("Track id", h("code", {}, t.track_id)),
    fact("Models", Object.entries(t.model_versions || {}).map(([k, v]) => `${k} ${v || "none"}`).join(" · ")),
  );
  const mood = t.mood
    ? h("div", { class: "mood-card" }, scale("valence", t.mood.valence, "unpleasant", "pleasant"), scale("arousal", t.mood.arousal, "calm", "energetic"))
    : h("p", { class: "meta" }, "No mood for this track in the published content model.");
  const features = featureList(t.audio_features);
  const acts = state.user
    ? h("p", { class: "tools" }, ["play", "like", "skip"].map((kind) =>
        h("button", { type: "button", onclick: () => trackEvent(kind, t) }, `${kind[0].toUpperCase()}${kind.slice(1)} as ${state.user}`)),
      h("span", { id: "track-event-status", class: "meta", role: "status", "aria-live": "polite" }))
    : h("p", { class: "meta" }, "Pick a listener in Discover to play, like or skip from here.");
  const sim = similar.status === "fulfilled"
    ? listSection("track-similar", "Similar tracks", similar.value.data.items, "No similar tracks.")
    : [h("h2", {}, "Similar tracks"), h("p", { class: "error" }, similar.reason.message)];
  const radio = h("div", { id: "track-radio" }, h("p", { class: "meta" }, "Loading the artist's radio…"));
  put(body,
    h("p", { class: "byline" }, "by ", artistLink(), t.genre ? ` · ${t.genre}` : "", t.year ? ` · ${t.year}` : ""),
    facts, acts,
    h("div", { class: "two-col" },
      h("div", {}, h("h2", {}, "Mood"), mood),
      h("div", {}, h("h2", {}, "Audio features"), features)),
    h("div", { class: "two-col" }, h("div", {}, sim), radio),
  );
  body.hidden = false;
  if (t.artist_key) loadRadio(t.artist_key, radio, t.artist);
  else put(radio, h("p", { class: "meta" }, "No artist known for this track, so no radio."));
}

function featureList(features) {
  if (!features || (typeof features === "object" && !Object.keys(features).length)) {
    return h("p", { class: "meta" }, "No audio features for this track in the published models.");
  }
  const entries = Array.isArray(features) ? features.map((v, i) => [`#${i}`, v]) : Object.entries(features);
  return h("dl", { class: "facts features" }, entries.map(([k, v]) => fact(k, typeof v === "number" ? String(+v.toFixed(3)) : String(v))));
}

async function trackEvent(kind, t) {
  const status = $("track-event-status");
  if (!state.keys.ingest) return showError($("track-error"), "Sending events needs the ingest key: open “Keys” at the top.");
  try {
    await sendEvent(kind, t.track_id, null);
    status.textContent = `Sent a ${kind} of “${t.title}” as ${state.user}; Discover reflects it on its next refresh.`;
  } catch (err) {
    showError($("track-error"), err);
  }
}

async function loadRadio(artistId, target, name) {
  try {
    const { data } = await api(`/v1/artists/${enc(artistId)}/radio?n=10`);
    put(target,
      ...listSection("track-radio-list", `Radio from ${data.artist || name || artistId}`, data.items, "No radio tracks."),
      h("p", {}, h("a", { href: radioHref(artistId) }, "Open this radio as its own page")),
    );
  } catch (err) {
    put(target, h("h2", {}, "Artist radio"), h("p", { class: "error" }, err.message));
  }
}

export async function showRadio(artistId) {
  const box = $("track-error");
  const body = $("track-body");
  $("track-id").value = "";
  $("track-heading").textContent = "Loading…";
  try {
    const { data } = await api(`/v1/artists/${enc(artistId)}/radio?n=20`);
    clearError(box);
    $("track-heading").textContent = `Radio: ${data.artist || artistId}`;
    put(body,
      h("p", { class: "byline" }, `The genre and mood neighbourhood of ${data.artist || artistId}` +
        (data.genre ? ` (${data.genre})` : "") + `, without the artist itself. ${data.artist_tracks} tracks of theirs in the catalog.`),
      h("div", { class: "mood-card" }, scale("valence", data.mood.valence, "unpleasant", "pleasant"), scale("arousal", data.mood.arousal, "calm", "energetic")),
      ...listSection("radio-list", "Radio", data.items, "No radio tracks."),
    );
    body.hidden = false;
  } catch (err) {
    $("track-heading").textContent = "Radio";
    body.hidden = true;
    showError(box, err);
  }
}

async function identify() {
  const box = $("identify-error");
  const out = $("identify-body");
  const file = $("identify-file").files[0];
  if (!file) return showError(box, "Choose an audio file first.");
  const form = new FormData();
  form.append("file", file, file.name);
  put(out, h("p", { class: "meta" }, `Listening to ${file.name}…`));
  try {
    const { data, ms } = await api("/v1/identify", { method: "POST", form });
    clearError(box);
    renderMatch(data, ms);
  } catch (err) {
    put(out);
    if ([404, 405, 501].includes(err.status)) {
      showError(box, `Identify is not available on this server (${err.message}) It needs a published fingerprint index and the identify route.`);
    } else {
      showError(box, err);
    }
  }
}

function renderMatch(d, ms) {
  const m = d.match;
  const confidence = m && typeof m.confidence === "number" && m.confidence <= 1 ? `${Math.round(m.confidence * 100)}%` : m && m.confidence;
  const head = d.matched && m
    ? h("div", { class: "match" },
        h("h2", {}, "Match: ", h("a", { href: trackHref(m.track_id) }, m.title || m.track_id), ` by ${m.artist || "unknown artist"}`),
        h("p", { class: "meta" }, `confidence ${confidence} · ${m.votes} aligned fingerprint votes · ${Math.round(ms)} ms`))
    : h("div", { class: "match none" }, h("h2", {}, "No match"));
  const lists = [
    ["identify-more", `More from ${m && m.artist ? m.artist : "the artist"}`, d.more_from_artist],
    ["identify-fans", "Fans also like", d.fans_also_like],
    ["identify-similar", d.matched ? "Similar" : "Closest in the catalog", d.similar],
  ].filter(([, , items]) => items && items.length);
  put($("identify-body"),
    head,
    d.message ? h("p", { id: "identify-message" }, `${d.message[0].toUpperCase()}${d.message.slice(1)}.`) : null,
    lists.length ? h("div", { class: "three-col" }, lists.map(([id, title, items]) => h("div", {}, listSection(id, title, items, "")))) : null,
  );
}
