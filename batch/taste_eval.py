"""``encore eval-taste``: the taste classifier on a population whose taste depends on the
audio, measured two ways.

The population is the demo generator with ``audio_taste`` (:mod:`models.demo`): each
track has a hidden 16-d audio vector and each listener a hidden preference direction
that moves the chance of a full play or a like against a skip or a dislike. The
audio vectors stand in for the content artifact's ``audio.npy`` (generated tracks
have no sound); text vectors are all-MiniLM-L6-v2 of each track's metadata, as in
the content artifact (tests pass a cheaper encoder).

1. **Held-out events** (:func:`auc_eval`): per listener, labelled events in time
   order, the last ``holdout`` share held out. Classifiers are fitted on the rest;
   AUC of the held-out labels, pooled over every held-out event of listeners with a
   classifier and as the mean over listeners whose held-out events have both labels,
   against baselines: the listener's share of positives in training, the track's
   training popularity and its smoothed positive share (0.5 is chance).
2. **Served cold tracks** (:func:`cold_eval`): a seeded share of the catalog is made
   new (no event on it before the split, so no collaborative vector); ALS is fitted on
   the training events, every cold track is offered as a fresh arrival, and each
   listener with a held-out positive on a cold track is served through
   :mod:`models.ranking` (the API's code) with and without the taste classifier,
   under two arms' hand-set weights (:data:`ARMS_SERVED`).
   Hits are held-out positives (like or full play) on cold tracks in the top 20.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from batch.als import ALS
from batch.data import Labels, TrainData, from_events
from batch.taste import fit_taste
from models import ranking
from models.bandit import ARMS
from models.content import track_text
from models.demo import DemoData
from models.index import build_index
from models.ranking import RankConfig, Request
from models.rerank import Filters
from models.serving import Bundle, Content, make_collab, unit
from models.state import FoldConfig, ItemInfo, UserState, apply_interaction
from models.taste import Taste, make_taste

Encode = Callable[[list[str]], np.ndarray]
Log = Callable[[str], None]
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
"""Taste weights the cold-track evaluation serves with (0: the signal off)."""
ARMS_SERVED = ("collab-heavy", "balanced")
"""Arms (hand-set weights) the cold-track evaluation serves with: the tuned policy's usual
leader, and one that leans less on the collaborative signal."""


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN without both labels."""
    y = np.asarray(positive, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    s = np.asarray(scores, np.float64)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # average 1-based rank of the tie group
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def time_split(labels: Labels, holdout: float) -> np.ndarray:
    """Per listener, whether each labelled event is in the later ``holdout`` share."""
    test = np.zeros(len(labels), bool)
    users, inverse = np.unique(labels.user, return_inverse=True)
    for u in range(len(users)):
        idx = np.flatnonzero(inverse == u)
        idx = idx[np.argsort(labels.when[idx], kind="stable")]
        k = int(np.ceil(holdout * len(idx)))
        if k and len(idx) > k:
            test[idx[-k:]] = True
    return test


def texts_of(demo: DemoData) -> list[str]:
    """What each demo track is embedded by (its catalog metadata)."""
    return [track_text(t.model_dump()) for t in demo.tracks]


def _taste(fitted: Any, version: str) -> Taste:
    return make_taste(
        "eval", version, fitted.users, fitted.weights, fitted.bias, fitted.prior, fitted.space
    )


def auc_eval(
    demo: DemoData,
    text: np.ndarray,
    *,
    min_events: int,
    l2: float,
    text_dims: int,
    full_play: float = 0.8,
    holdout: float = 0.2,
) -> dict[str, Any]:
    """AUC of held-out labels: classifiers (audio + text, audio only, text only) and the
    baselines (module doc)."""
    assert demo.audio is not None, "generate the population with audio_taste > 0"
    labels = from_events("demo", demo.tracks, demo.interactions, full_play).labels
    assert labels is not None
    test_mask = time_split(labels, holdout)
    train, test = labels.take(~test_mask), labels.take(test_mask)
    row = {t.track_id: i for i, t in enumerate(demo.tracks)}
    audio = np.asarray(demo.audio)
    variants = {
        "classifier: audio + text": (audio, text),
        "classifier: audio only": (audio, np.zeros_like(text)),
        "classifier: text only": (np.zeros_like(audio), text),
    }
    fitted = {
        name: fit_taste(train, row, a, t, min_events=min_events, l2=l2, text_dims=text_dims)
        for name, (a, t) in variants.items()
    }
    main = fitted["classifier: audio + text"]
    users = set(main.users)
    keep = np.fromiter((u in users for u in test.user), bool, len(test))
    test = test.take(keep)
    t_rows = np.array([row[t] for t in test.track], np.int64)
    scores: dict[str, np.ndarray] = {}
    for name, (a, t) in variants.items():
        taste = _taste(fitted[name], "eval")
        feats = taste.space.features(a, t)[t_rows]
        at = np.array([taste.users[str(u)] for u in test.user], np.int64)
        z = np.einsum("ij,ij->i", feats, taste.weights[at].astype(np.float64)) + taste.bias[at]
        scores[name] = 1.0 / (1.0 + np.exp(-z))
    prior = dict(zip(main.users, main.prior.tolist(), strict=True))
    scores["baseline: listener's positive share"] = np.array([prior[u] for u in test.user])
    n_items = len(demo.tracks)
    tr_rows = np.array([row[t] for t in train.track], np.int64)
    events = np.bincount(tr_rows, minlength=n_items).astype(np.float64)
    pos = np.bincount(tr_rows, weights=train.positive.astype(np.float64), minlength=n_items)
    scores["baseline: track popularity"] = events[t_rows]
    scores["baseline: track's positive share"] = ((pos + 1) / (events + 2))[t_rows]
    table = {}
    for name, s in scores.items():
        per_user = [
            auc(s[test.user == u], test.positive[test.user == u]) for u in np.unique(test.user)
        ]
        per_user = [a for a in per_user if not np.isnan(a)]
        table[name] = {
            "auc_pooled": round(auc(s, test.positive), 4),
            "auc_mean_per_listener": round(float(np.mean(per_user)), 4) if per_user else None,
            "listeners": len(per_user),
        }
    return {
        "listeners_with_classifier": len(users),
        "listeners_without": main.info,
        "train_events": len(train),
        "held_out_events": len(test),
        "held_out_positive_share": round(float(test.positive.mean()), 4) if len(test) else None,
        "results": table,
    }


def content_of(demo: DemoData, text: np.ndarray, version: str = "eval-content") -> Content:
    """A served content model of the demo catalog with the given text and hidden audio."""
    ids = [t.track_id for t in demo.tracks]
    items = [
        {k: getattr(t, k) for k in ("title", "artist", "artist_id", "genre", "tags", "year")}
        for t in demo.tracks
    ]
    vectors = unit(text)
    audio = None if demo.audio is None else unit(demo.audio)
    return Content(
        version=version,
        ids=ids,
        row={t: i for i, t in enumerate(ids)},
        items=items,
        text=vectors,
        text_index=build_index(vectors),
        mood=np.zeros((len(ids), 2), np.float32),
        audio=audio,
        audio_index=None,
        text_to_cf=None,
        text_to_cf_bias=None,
        cf_version="",
        text_to_mood=None,
        text_to_mood_bias=None,
        lexicon={},
        genres=frozenset(str(i["genre"]).lower() for i in items if i.get("genre")),
        artist_names={},
    )


def _fold(events: Sequence[Any], collab: Any, cfg: FoldConfig) -> dict[str, UserState]:
    states: dict[str, UserState] = {}
    for e in events:
        state = states.setdefault(e.user_id, UserState())
        r = collab.row.get(e.track_id)
        item = ItemInfo(collab.items[r] if r is not None else None)
        apply_interaction(state, e, item, cfg, collab.version)
    return states


def cold_eval(
    demo: DemoData,
    text: np.ndarray,
    *,
    min_events: int,
    l2: float,
    text_dims: int,
    seed: int,
    cold_share: float = 0.15,
    holdout: float = 0.2,
    n: int = 20,
    arm: str = "balanced",
    weights: Sequence[float] = WEIGHTS,
    rank: RankConfig | None = None,
    log: Log = lambda _m: None,
) -> dict[str, Any]:
    """Served lists with and without the taste signal on cold tracks (module doc)."""
    cfg = rank or RankConfig()
    rng = np.random.default_rng(seed)
    ids = [t.track_id for t in demo.tracks]
    cold = set(np.array(ids)[rng.random(len(ids)) < cold_share].tolist())
    inter = list(demo.interactions)
    cut: dict[str, int] = {}
    by_user: dict[str, list[int]] = {}
    for e in inter:
        by_user.setdefault(e.user_id, []).append(e.occurred_ms)
    for u, times in by_user.items():
        times.sort()
        cut[u] = times[min(len(times) - 1, int(np.floor((1 - holdout) * len(times))))]
    train_ev = [e for e in inter if e.occurred_ms < cut[e.user_id] and e.track_id not in cold]
    test_ev = [e for e in inter if e.occurred_ms >= cut[e.user_id]]
    data: TrainData = from_events("demo", demo.tracks, train_ev, cfg.fold.full_play)
    als = ALS(factors=32, regularization=10.0, iterations=15, seed=seed).fit(data.counts)
    pop = data.popularity()
    collab = make_collab(
        "eval-als", data.items, als.item_factors, data.users, als.user_factors, pop,
        data.item_artists(), "eval-als",
    )  # fmt: skip
    content = content_of(demo, text)
    assert data.labels is not None
    row = {t: i for i, t in enumerate(ids)}
    fitted = fit_taste(
        data.labels, row, np.asarray(demo.audio), text,
        min_events=min_events, l2=l2, text_dims=text_dims,
    )  # fmt: skip
    plain = Bundle(collab=collab, content=content)
    with_taste = replace(plain, taste=_taste(fitted, content.version))
    states = _fold(train_ev, collab, cfg.fold)
    positive = [
        e
        for e in test_ev
        if e.type == "like" or (e.type == "play" and e.completion_ratio >= cfg.fold.full_play)
    ]
    targets: dict[str, set[str]] = {}
    for e in positive:
        targets.setdefault(e.user_id, set()).add(e.track_id)
    users = sorted(u for u, ts in targets.items() if ts & cold and u in states)
    release_ms = max(cut.values())
    fresh = [(t, float(release_ms)) for t in sorted(cold)]
    now_ms = release_ms + 86_400_000
    log(f"taste cold eval: {len(cold)} cold tracks, {len(users)} listeners with cold positives")
    rows: dict[str, dict[str, float]] = {}
    for name, bundle, ws in (("without", plain, [0.0]), ("with", with_taste, weights[1:])):
        prepared = []
        for u in users:
            req = Request(u, states[u], {}, fresh, now_ms)
            pool, _ = ranking.candidates(bundle, req, {}, cfg)
            prepared.append(ranking.prepare(bundle, req, pool, {}))
        for w in ws:
            lists = [
                [
                    r.candidate.track_id
                    for r in ranking.rank(
                        p, ARMS[arm], n=n, filters=Filters(), lam=cfg.mmr_lambda,
                        artist_gap=cfg.artist_gap, taste_weight=w,
                    )
                ]
                for p in prepared
            ]  # fmt: skip
            key = "taste signal off" if name == "without" else f"taste weight {w}"
            rows[key] = list_scores(lists, [targets[u] for u in users], cold, n)
            log(f"taste cold eval {key}: {rows[key]}")
    return {
        "cold_tracks": len(cold),
        "listeners": len(users),
        "listeners_with_classifier": sum(u in with_taste.taste.users for u in users),  # type: ignore[union-attr]
        "arm": arm,
        "arm_weights": dict(ARMS[arm]),
        "list_length": n,
        "results": rows,
    }


def list_scores(
    lists: Sequence[Sequence[str]], targets: Sequence[set[str]], cold: set[str], n: int
) -> dict[str, float]:
    """Hit rate, recall and nDCG at ``n`` of the held-out positives on cold tracks, nDCG
    of every held-out positive, and the mean number of cold tracks per list."""
    hit, rec, ndcg, ndcg_all, n_cold = [], [], [], [], []
    disc = 1.0 / np.log2(np.arange(2, n + 2))
    for items, want in zip(lists, targets, strict=True):
        want_cold = want & cold
        gains = np.array([t in want_cold for t in items[:n]], np.float64)
        gains_all = np.array([t in want for t in items[:n]], np.float64)
        hit.append(float(gains.any()))
        rec.append(gains.sum() / len(want_cold))
        ndcg.append(float(gains @ disc[: len(gains)]) / disc[: min(n, len(want_cold))].sum())
        ndcg_all.append(float(gains_all @ disc[: len(gains)]) / disc[: min(n, len(want))].sum())
        n_cold.append(sum(t in cold for t in items[:n]))
    return {
        f"cold_hit@{n}": round(float(np.mean(hit)), 4),
        f"cold_recall@{n}": round(float(np.mean(rec)), 4),
        f"cold_ndcg@{n}": round(float(np.mean(ndcg)), 4),
        f"all_ndcg@{n}": round(float(np.mean(ndcg_all)), 4),
        "cold_per_list": round(float(np.mean(n_cold)), 2),
    }


def run(
    *,
    seed: int,
    audio_taste: float,
    encode: Encode,
    min_events: int,
    l2: float,
    text_dims: int,
    rank: RankConfig | None = None,
    log: Log = lambda _m: None,
) -> dict[str, Any]:
    """Both evaluations on the audio-taste population, and the AUC on the plain demo (whose
    taste does not depend on the audio) as a control."""
    from models.demo import generate

    demo = generate(seed=seed, audio_taste=audio_taste)
    control = generate(seed=seed)
    text = np.asarray(encode(texts_of(demo)), np.float64)
    opts: Mapping[str, Any] = {"min_events": min_events, "l2": l2, "text_dims": text_dims}
    log("taste: held-out AUC")
    held_out = auc_eval(demo, text, **opts)
    control_demo = replace(control, audio=demo.audio)
    control_auc = auc_eval(control_demo, text, **opts)
    served = {}
    for arm in ARMS_SERVED:
        log(f"taste: served cold tracks, {arm}")
        served[arm] = cold_eval(demo, text, seed=seed, rank=rank, arm=arm, log=log, **opts)
    return {
        "population": {
            "generator": "models.demo.generate",
            "seed": seed,
            "audio_taste": audio_taste,
            "tracks": len(demo.tracks),
            "events": len(demo.interactions),
        },
        "settings": dict(opts),
        "held_out": held_out,
        "control_plain_demo": control_auc,
        "served_cold": served,
    }
