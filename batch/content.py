"""Train and publish the ``content`` artifact: text, audio and mood for every catalog track.

Files (the contract the API and the stream workers read):

=============================  ================================================
``item_ids.json``              every catalog track id
``items.json``                 per track: title, artist, artist_id, genre, tags,
                               year, ``healed`` (field -> how it was filled),
                               is_music / non_music_reason, popularity_tier,
                               richness, has_audio, mood_from, text_key,
                               audio_features (tempo, key and mode, loudness
                               of tracks with real audio; null otherwise)
``text.npy`` + ``text.faiss``  all-MiniLM-L6-v2 of :func:`models.content.track_text`
                               of the track's own metadata (what the catalog agent
                               embeds live), L2-normalised, n x 384
``text_neighbours.npy`` +      every track's 64 nearest tracks by ``text.faiss``
``text_neighbour_scores.npy``  (ids, cosines): the API's "sounds like your recent
                               plays" candidates read them instead of searching
``mood.npy``                   valence, arousal in [-1, 1], n x 2
``audio.npy`` + ``audio.faiss`` reduced audio features, n x 16, or with
                               ``ENCORE_AUDIO_VECTORS=learned`` the learned
                               encoder's embeddings, n x its dim
                               (:mod:`batch.learned_audio`; imputed when the
                               track has no audio; see ``items.json``)
``text_to_cf[_bias].npy``      ridge text -> item space of ``params.cf_version``
``text_to_mood[_bias].npy``    ridge text -> (valence, arousal)
``lexicon.json``               mood word -> [valence, arousal]
``lexicon_vectors.npy``        embedded lexicon centroids, rows in sorted word order
``audio_mean/std/components``  the audio reducer, to place new audio in ``audio.npy``
                               (librosa vectors only)
``tags.json``, ``tag_vectors``, the descriptive space of mood queries: the tag
``item_tags_*.npy``,           vocabulary without generic tags, embedded, its
``tag_moods.npy``              valence/arousal, and the items x tags matrix
                               (listener counts per tag where the catalog entry
                               has ``tag_counts``; :mod:`models.io.queryspace`)
=============================  ================================================

Text vectors of unchanged texts are reused from the previous content version,
so a retrain embeds only new or edited tracks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from batch import audio, audio_sources, learned_audio
from batch.data import TrainData
from batch.encoder import EncoderConfig
from batch.healing import heal
from batch.impute import fit_text_map, impute_rows
from batch.mood import CueModel, TextMood, mood_target, track_moods
from batch.publish import write_index
from batch.remote_audio import Remote
from batch.text import MODEL_NAME, embed_with_cache, encoder, text_key
from models.content import track_text
from models.io.artifacts import ArtifactError, ArtifactStore, save_array, save_json
from models.io.queryspace import save_tag_space
from models.mood import LEXICON
from models.tagspace import build as build_tag_space

Step = Callable[[str, int], Callable[[int], None]]
"""Progress factory: (step name, total) -> advance(n)."""


def _no_progress(_name: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


def _previous(store: ArtifactStore) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """Text vectors by text key, and the text-mood maps, of the published content version."""
    try:
        art = store.load("content")
        keys = [it.get("text_key") for it in art.json("items.json")]
        text = art.array("text.npy")
        cache = {k: text[i] for i, k in enumerate(keys) if k}
        maps = None
        if art.manifest["params"].get("lexicon_key") == _lexicon_key():
            maps = {n: art.array(f"{n}.npy") for n in ("text_to_mood", "text_to_mood_bias")}
            maps["lexicon_vectors"] = art.array("lexicon_vectors.npy")
        return cache, maps
    except (ArtifactError, OSError, KeyError, ValueError):
        return {}, None


def _lexicon_key() -> str:
    return text_key(repr(sorted(LEXICON.items())) + MODEL_NAME)


def _text_mood(cached: dict[str, Any] | None) -> tuple[TextMood, bool]:
    words = sorted(LEXICON)
    if cached is not None:
        tm = TextMood()
        tm.weights, tm.bias = cached["text_to_mood"], cached["text_to_mood_bias"]
        tm.words, tm.vectors = words, cached["lexicon_vectors"]
        tm.values = np.array([LEXICON[w] for w in words], dtype=np.float32)
        return tm, True
    tm = TextMood().fit(encoder().encode)
    order = [tm.words.index(w) for w in words]
    tm.words, tm.vectors, tm.values = words, tm.vectors[order], tm.values[order]
    return tm, False


def _calibrated_cues(
    features: dict[str, np.ndarray], urls: dict[str, str], decoding: audio.Decoding | None
) -> tuple[CueModel, dict[str, Any]]:
    """Cue model with statistics and affine maps from the labelled packaged clips. A clip
    the catalog links to (under any track id) keeps the features its one decode gave;
    only the others are decoded here."""
    labelled = [
        c
        for c in audio_sources.clips()
        if c.mood in {"happy", "energetic", "calm", "tender", "nostalgic"}
    ]
    by_file = {
        path.resolve(): features[t]
        for t, url in urls.items()
        if t in features and (path := audio.path_of(url)) is not None
    }
    known = {c.track_id: by_file[c.path.resolve()] for c in labelled if c.path.resolve() in by_file}
    missing = [
        (c.track_id, c.path.resolve().as_uri())
        for c in labelled
        if c.track_id not in known and c.track_id not in features
    ]
    extra = (
        audio.analyse(missing, fingerprints=False, decoding=decoding).features if missing else {}
    )
    feats = {**extra, **known, **features}
    rows = [c for c in labelled if c.track_id in feats]
    model = CueModel()
    if len(rows) >= 4:
        x = np.stack([feats[c.track_id] for c in rows])
        y = np.stack([mood_target(c.mood, c.bpm) for c in rows])
        return model, model.calibrate(x, y)
    model.fit_stats(np.stack(list(features.values())))
    return model, {"n": 0.0, "note": "no labelled clips (install the data extra); default map"}


def train_content(
    store: ArtifactStore,
    data: TrainData,
    *,
    cf_version: str | None = None,
    audio_pass: audio.AudioPass | None = None,
    step: Step = _no_progress,
    seed: int = 0,
    roots: Sequence[Path] = (),
    remote: Remote | None = None,
    decoding: audio.Decoding | None = None,
    vectors: Literal["librosa", "learned"] = "librosa",
    encoder_config: EncoderConfig | None = None,
) -> str:
    """Build every content vector for ``data.catalog`` and publish the ``content`` artifact.

    Without ``audio_pass``, the catalog's audio is read here, local files only under
    ``roots`` (and the packaged clips), http(s) links fetched as ``remote`` says, decoded
    as ``decoding`` says (which should be what ``audio_pass`` was decoded with, too: the
    mood calibration decodes any labelled clip the catalog lacks the same way).
    ``vectors`` picks the audio vectors (``ENCORE_AUDIO_VECTORS``): the reduced librosa
    features, or a learned encoder's embeddings (trained here on the catalog's local
    audio and published as ``audio_encoder``, :mod:`batch.learned_audio`)."""
    ids = sorted(data.catalog)
    metas = [data.catalog[t] for t in ids]
    texts = [track_text(m) for m in metas]
    cache, cached_maps = _previous(store)
    text, embedded = embed_with_cache(texts, cache, step("text", len(texts)))

    column = {t: j for j, t in enumerate(data.items)}
    pop = data.popularity()
    listeners = np.array([pop[column[t]] if t in column else 0.0 for t in ids])
    items, report = heal(metas, text_vectors=text, listeners=listeners)

    with_audio = [
        (t, str(m["audio_url"])) for t, m in zip(ids, metas, strict=True) if m.get("audio_url")
    ]
    if audio_pass is None:
        audio_pass = audio.analyse(
            with_audio,
            fingerprints=False,
            progress=step("audio", len(with_audio)),
            roots=roots,
            remote=remote,
            decoding=decoding,
        )
    has_audio = np.array([t in audio_pass.features for t in ids])
    raw = np.zeros((len(ids), len(audio.FEATURES)), dtype=np.float64)
    for i, t in enumerate(ids):
        if has_audio[i]:
            raw[i] = audio_pass.features[t]
    genres = [it.get("genre") for it in items]
    raw, how = impute_rows(raw, has_audio, genres, text)
    imputed = np.array([h is not None for h in how], dtype=bool)
    reducer: audio.Reducer | None = None
    audio_vectors = np.zeros((len(ids), audio.AUDIO_DIM), dtype=np.float32)
    learned: dict[str, Any] | None = None
    cue_report: dict[str, Any] = {"n": 0.0, "note": "no track has audio"}
    cues: CueModel | None = None
    audio_mood = None
    if has_audio.sum() >= 2:
        reducer = audio.Reducer().fit(raw[has_audio])
        audio_vectors = reducer.transform(raw)
        audio_vectors[~(has_audio | imputed)] = 0.0  # no sound, no honest guess
        cues, cue_report = _calibrated_cues(
            {t: audio_pass.features[t] for t in ids if t in audio_pass.features},
            dict(with_audio),
            decoding,
        )
        audio_mood = cues.predict(raw)
    crop = (decoding or audio.Decoding()).crop
    if vectors == "learned":
        waves = learned_audio.local_waves(
            ids, dict(with_audio), set(audio_pass.features), roots=roots, crop=crop
        )
        if len(waves) >= 2:
            config = encoder_config or EncoderConfig()
            audio_vectors, filled, learned = learned_audio.learned_vectors(
                store, ids, waves, genres, text, config,
                progress=step("encoder", config.steps), data=dict(data.info),
            )  # fmt: skip
            audio_vectors[~(has_audio | np.array([h is not None for h in filled]))] = 0.0
    weight = np.where(has_audio, 0.5, np.where(imputed, 0.25, 0.0))
    text_mood, reused_mood = _text_mood(cached_maps)
    tags = [it.get("tags") or [] for it in items]
    moods, mood_from = track_moods(audio_mood, weight, tags, text_mood.predict(text))
    for t, it, h, src, key, real in zip(ids, items, how, mood_from, texts, has_audio, strict=True):
        if h:
            it["healed"]["audio"] = h
        it["has_audio"] = bool(real)
        it["audio_features"] = audio.describe(audio_pass.features[t], crop) if real else None
        it["mood_from"] = src.replace("audio", "audio_imputed") if h else src
        it["text_key"] = text_key(key)

    path = store.stage("content")
    save_json(path, "item_ids.json", ids)
    keep = ("title", "artist", "artist_id", "genre", "tags", "year", "description", "healed",
            "is_music", "non_music_reason", "popularity_tier", "richness", "has_audio",
            "mood_from", "text_key", "audio_url", "audio_features")  # fmt: skip
    save_json(path, "items.json", [{k: it.get(k) for k in keep} for it in items])
    save_array(path, "text", text)
    save_array(path, "mood", moods)
    save_array(path, "audio", audio_vectors)
    text_index = write_index(path, "text.faiss", text, neighbours=True)
    audio_index = write_index(path, "audio.faiss", audio_vectors)
    save_array(path, "text_to_mood", text_mood.weights)
    save_array(path, "text_to_mood_bias", text_mood.bias)
    save_json(path, "lexicon.json", {w: list(LEXICON[w]) for w in text_mood.words})
    save_array(path, "lexicon_vectors", text_mood.vectors)
    tag_space = build_tag_space(
        [it.get("tags") or [] for it in items],
        encoder().encode,
        [it.get("artist") for it in items],
        counts=[it.get("tag_counts") for it in items],
        mood=text_mood.predict,
    )
    save_tag_space(path, tag_space)
    if reducer is not None and learned is None:
        save_array(path, "audio_mean", reducer.mean.astype(np.float32))
        save_array(path, "audio_std", reducer.std.astype(np.float32))
        save_array(path, "audio_components", reducer.components.astype(np.float32))

    metrics: dict[str, Any] = {"healing": report, "mood_calibration": cue_report}
    if learned is not None:
        metrics["audio_encoder"] = learned["audio_encoder"]
    cf = _cf_space(store, cf_version)
    if cf is not None:
        version, cf_ids, factors = cf
        row = {t: i for i, t in enumerate(ids)}
        both = [(row[t], j) for j, t in enumerate(cf_ids) if t in row]
        if len(both) >= 2:
            w, b, metrics["text_to_cf"] = fit_text_map(
                text[[i for i, _ in both]], factors[[j for _, j in both]], seed
            )
            save_array(path, "text_to_cf", w)
            save_array(path, "text_to_cf_bias", b)
            cf_version = version
    params = {
        "cf_version": cf_version or "",
        "text_model": MODEL_NAME,
        "text_index": text_index,
        "audio_index": audio_index,
        "audio_dim": int(audio_vectors.shape[1]),
        "audio_vectors": "learned" if learned is not None else "librosa",
        "audio_encoder_version": None if learned is None else learned["audio_encoder_version"],
        "audio_explained_variance": None if reducer is None else reducer.explained,
        "cue_model": None if cues is None else cues.params(),
        "lexicon_key": _lexicon_key(),
        "mood_blend": {"audio": 0.5, "tags": 0.3, "text": 0.2},
        "query_tags": len(tag_space.tags),
    }
    info = {
        **data.info,
        "catalog": len(ids),
        "texts_embedded": embedded,
        "texts_reused": len(ids) - embedded,
        "text_to_mood_reused": reused_mood,
        "tracks_with_audio": int(has_audio.sum()),
        "audio_seconds": round(audio_pass.seconds, 1),
        **audio_pass.remote_info(),
        "audio_errors": dict(list(audio_pass.errors.items())[:20]),
    }
    return store.publish("content", path, params=params, metrics=metrics, data=info)


def _cf_space(
    store: ArtifactStore, version: str | None
) -> tuple[str, list[str], np.ndarray] | None:
    """(version, item ids, item factors) of the ``als`` space, or None when there is none."""
    try:
        art = store.load("als", version)
    except ArtifactError:
        return None
    return art.version, art.json("item_ids.json"), art.array("item_factors.npy")
