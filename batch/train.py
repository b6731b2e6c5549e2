"""``encore train``: data from a source, models trained and published as artifacts.

Sources: ``demo`` (the seeded generator, plus the packaged audio clips as extra
tracks with ``file://`` links when the ``data`` extra is installed), ``events``
(a Parquet snapshot of the topics, taken now or read from ``--path``),
``lastfm-2k`` (a HetRec folder) and ``movielens-100k`` (bundled with recbole).

Collaborative models hold out a tenth of each user's pairs (seeded) to measure
validation metrics and, for LightGCN, to stop early; then they are refitted on
everything with the chosen settings and epoch count, and published. The
hybrid blends them with EASE and the tag model on per-user z-scores, weights
tuned on the same split (:mod:`batch.hybrid`), reusing the ALS and LightGCN
fitted earlier in the run, and publishes every user's top K. The content
artifact maps into the ``als`` version this run published (or the current one).
Audio is decoded once per run, in ``ENCORE_AUDIO_WORKERS`` processes, for the
content features, their mood cues and the fingerprints together. The taste
classifiers (:mod:`batch.taste`) come last, over the content version just
published; sources without events (the public datasets) have no labels for them,
so ``all`` leaves them out there.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from batch import audio, audio_sources, learned_audio, served
from batch import tags as lfm_tags
from batch.als import ALS
from batch.cf import EASE, Blend, Recommender, TagKNN, tag_matrix
from batch.content import train_content
from batch.data import TrainData, binary, from_dataset, from_events
from batch.fingerprint import publish_fingerprints
from batch.hybrid import top_lists, tune_weights
from batch.lightgcn import LightGCN
from batch.metrics import evaluate
from batch.publish import publish_factors, publish_hybrid
from batch.remote_audio import Remote
from batch.split import random_split
from models.io.artifacts import ArtifactStore, remote_of
from models.ranking import RankConfig
from models.settings import Settings
from models.state import fold_config

SOURCES = ("demo", "events", "lastfm-2k", "movielens-100k")
KINDS = ("als", "lightgcn", "hybrid", "policy", "content", "fingerprint", "taste")
DEMO_LIGHTGCN_EPOCHS = 30
"""The demo trains LightGCN briefly: the point there is a loadable artifact in seconds."""


class Bars:
    """tqdm progress bars by step name (disabled when not wanted)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, name: str, total: int) -> Callable[[int], None]:
        if total <= 0:
            return lambda _n: None
        bar = tqdm(total=total, desc=name, unit="it", disable=not self.enabled, leave=True)

        def advance(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return advance


def load_source(source: str, path: Path | None, settings: Settings, bars: Bars) -> TrainData:
    """Training data of one source (see the module doc)."""
    if source == "demo":
        from models.demo import generate

        demo = generate()
        extra = [c.track() for c in audio_sources.clips()]
        data = from_events(
            "demo", [*demo.tracks, *extra], demo.interactions, settings.stream.full_play
        )
        data.info["packaged_audio_tracks"] = len(extra)
        return data
    if source == "events":
        from batch import snapshot

        folder = path
        if folder is None or not (folder / snapshot.META).is_file():
            if not settings.kafka.bootstrap:
                raise ValueError("--source events needs ENCORE_KAFKA_BOOTSTRAP or --path SNAPSHOT")
            out = path or Path(settings.run.dir) / "snapshots"
            advance: dict[str, Callable[[int], None]] = {}
            seen: dict[str, int] = {}

            def report(topic: str, done: int, total: int) -> None:
                if topic not in advance:
                    advance[topic] = bars(f"read {topic}", total)
                advance[topic](done - seen.get(topic, 0))
                seen[topic] = done

            folder = asyncio.run(
                snapshot.snapshot_topics(
                    settings.kafka.bootstrap,
                    out,
                    partitions=settings.kafka.partitions,
                    max_bytes=settings.kafka.max_record_bytes,
                    progress=report,
                    max_skew_ms=round(settings.stream.max_clock_skew_s * 1000),
                )
            )
            snapshot.prune(out, settings.artifacts.keep_versions)
        return snapshot.read(folder, settings.stream.full_play)
    if source == "lastfm-2k":
        from batch.datasets import add_tag_listeners, read_lastfm

        folder = _lastfm_folder(source, path)
        data = from_dataset(read_lastfm(folder))  # type: ignore[arg-type]
        if folder is not None:
            data.info["artists_with_tag_listeners"] = add_tag_listeners(data.catalog, folder)
        return data
    if source == "movielens-100k":
        from batch.datasets import read_movielens

        return from_dataset(read_movielens())
    raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")


def _lastfm_folder(source: str, path: Path | None) -> Path | None:
    if source != "lastfm-2k":
        return None
    env = os.environ.get("ENCORE_LASTFM_DIR")
    return path or (Path(env) if env else None)


def _validation_split(data: TrainData, seed: int) -> Any:
    return random_split(data.counts, seed, (0.9, 0.1, 0.0))


@dataclass
class Fitted:
    """One model fitted on the 90% split (validation) and refitted on all the data."""

    held: ALS | LightGCN
    full: ALS | LightGCN
    params: dict[str, Any]
    metrics: dict[str, Any]


def fit_als(data: TrainData, settings: Settings, bars: Bars) -> Fitted:
    """Fit ALS on 90%, measure the held-out 10%, refit on all."""
    b = settings.batch

    def make() -> ALS:
        return ALS(
            b.factors, b.als_regularization, b.als_iterations, b.confidence, b.als_alpha, b.seed
        )

    split = _validation_split(data, b.seed)
    held = make().fit(split.train, progress=lambda _i: None)
    metrics = evaluate(held.scores, binary(split.train), split.valid).metrics
    model = make().fit(data.counts, progress=bars("als", b.als_iterations))
    return Fitted(
        held,
        model,
        model.params(),
        {"validation": metrics, "validation_protocol": "random 90/10 per user"},
    )


def fit_lightgcn(data: TrainData, settings: Settings, bars: Bars) -> Fitted:
    """Early-stop on the held-out 10% (NDCG@10), refit on all for the best epoch count."""
    b = settings.batch
    epochs = (
        min(b.lightgcn_epochs, DEMO_LIGHTGCN_EPOCHS) if data.source == "demo" else b.lightgcn_epochs
    )

    def make(n_epochs: int) -> LightGCN:
        return LightGCN(
            b.lightgcn_factors,
            b.lightgcn_layers,
            b.lightgcn_lr,
            batch_size=b.lightgcn_batch_size,
            epochs=n_epochs,
            seed=b.seed,
        )

    split = _validation_split(data, b.seed)
    bar = bars("lightgcn (validation)", epochs)
    held = make(epochs).fit(split.train, split.valid, progress=lambda _e, _r: bar(1))
    bar(epochs)  # early stop: close the bar
    best = max(held.best_epoch, 1)
    final_bar = bars("lightgcn (refit)", best)
    model = make(best).fit(data.counts, progress=lambda _e, _r: final_bar(1))
    metrics = {
        "validation": {"ndcg@10": held.best_valid},
        "best_epoch": best,
        "curve": [r for r in held.curve if "valid_ndcg@10" in r],
        "validation_protocol": "random 90/10 per user",
    }
    return Fitted(held, model, {**model.params(), "epochs": best}, metrics)


def publish_fitted(store: ArtifactStore, kind: str, data: TrainData, fitted: Fitted) -> str:
    """Publish the refitted factor model (``als`` or ``lightgcn``)."""
    return publish_factors(
        store,
        kind,
        data,
        fitted.full.user_factors,
        fitted.full.item_factors,
        params=fitted.params,
        metrics=fitted.metrics,
    )


def item_tags(data: TrainData, held_out: sp.csr_matrix, folder: Path | None) -> sp.csr_matrix:
    """Items x tags for the tag model.

    Last.fm (``folder`` given): the users' tag assignments without the
    ``held_out`` pairs (a user's tag on an artist gives the pair away, see
    :mod:`batch.tags`); otherwise the catalog's tags.
    """
    if folder is not None:
        found = lfm_tags.read_assignments(folder, data.users, data.items)
        return lfm_tags.item_tags(found, data.counts.shape, held_out)
    return tag_matrix([list(data.catalog.get(t, {}).get("tags") or []) for t in data.items])[0]


def train_hybrid(
    store: ArtifactStore,
    data: TrainData,
    settings: Settings,
    bars: Bars,
    *,
    tags_folder: Path | None,
    fitted: dict[str, Fitted],
    versions: dict[str, str],
) -> tuple[str, Blend]:
    """Tune the blend on the 90/10 split, refit on all, publish each user's top K; returns
    the version and the blend of the 90% models (the policy is tuned with it).

    ALS and LightGCN fitted earlier in the run (``fitted``) are reused; EASE
    joins only up to ``hybrid_ease_max_items`` items, the tag model only when
    there are tags; what is left out is recorded in the manifest.
    """
    b = settings.batch
    split = _validation_split(data, b.seed)
    for kind, fit in (("als", fit_als), ("lightgcn", fit_lightgcn)):
        if kind not in fitted:
            fitted[kind] = fit(data, settings, bars)
    held: dict[str, Recommender] = {k: fitted[k].held for k in ("als", "lightgcn")}
    components: dict[str, dict[str, Any]] = {
        k: {"params": fitted[k].params, **({"version": versions[k]} if k in versions else {})}
        for k in ("als", "lightgcn")
    }
    left_out: dict[str, str] = {}
    step = bars("hybrid", 4)
    if len(data.items) <= b.hybrid_ease_max_items:
        held["ease"] = ease = EASE().fit(split.train)
        components["ease"] = {"params": {"lam": ease.lam, "scheme": ease.scheme}}
    else:
        left_out["ease"] = f"{len(data.items)} items > hybrid_ease_max_items"
    step(1)
    tags = item_tags(data, binary(split.valid), tags_folder)
    if tags.nnz:
        held["tags"] = knn = TagKNN(tags).fit(split.train)
        source = "Last.fm tag assignments" if tags_folder else "catalog tags"
        components["tags"] = {"params": {"k": knn.k, "shrink": knn.shrink, "from": source}}
    else:
        left_out["tags"] = "no item has tags"
    step(1)
    tuning = tune_weights(held, split.train, split.valid, "als")
    used = {n: w for n, w in tuning.weights.items() if w}
    held_blend = Blend({n: held[n] for n in used}, used).fit(split.train)
    del held
    step(1)
    full: dict[str, Recommender] = {k: fitted[k].full for k in ("als", "lightgcn")}
    if tuning.weights.get("ease"):
        full["ease"] = EASE().fit(data.counts)
    if tuning.weights.get("tags"):
        empty = sp.csr_matrix(data.counts.shape, dtype=np.float32)
        full["tags"] = TagKNN(item_tags(data, empty, tags_folder)).fit(data.counts)
    top_items, top_scores = top_lists(
        Blend(full, used).fit(data.counts), data.counts, b.hybrid_top_k
    )
    step(1)
    params = {
        "weights": tuning.weights,
        "components": components,
        "left_out": left_out,
        "k": b.hybrid_top_k,
        "excluded": "training items of each user",
    }
    metrics = {
        "validation": {"ndcg@10": tuning.ndcg, "by_component": {"ndcg@10": tuning.alone}},
        "validation_protocol": "random 90/10 per user",
    }
    version = publish_hybrid(store, data, top_items, top_scores, params=params, metrics=metrics)
    return version, held_blend


def train_policy(
    store: ArtifactStore,
    data: TrainData,
    settings: Settings,
    *,
    als: Fitted,
    blend: Recommender | None,
    versions: dict[str, str],
) -> str:
    """Tune the bandit's arms with the served pipeline on the 90/10 split; publish them.

    The models are those fitted on the 90% (ALS, and the hybrid's blend when this run
    trained one), so the validation users' lists are what the API would serve them.
    """
    b = settings.batch
    split = _validation_split(data, b.seed)
    assert isinstance(als.held, ALS)
    bundle = served.bundle_from_models(
        data, split.train, als.held.user_factors, als.held.item_factors, blend, b.hybrid_top_k
    )
    cfg = RankConfig(
        fold=fold_config(settings),
        mmr_lambda=settings.api.mmr_lambda,
        artist_gap=settings.api.artist_gap,
    )
    tuned = served.tune_on_split(
        bundle,
        data,
        split.train,
        split.valid,
        evaluate(als.held.scores, binary(split.train), split.valid).lists,
        cfg,
        prior_strength=b.policy_prior_strength,
        explore_share=b.policy_explore_share,
    )
    path = store.stage("policy")
    return store.publish(
        "policy",
        path,
        params={
            "policy": tuned.policy.to_json(),
            "mmr_lambda": tuned.mmr_lambda,
            "base_weights": tuned.base,
            "unmeasured_arms": tuned.unmeasured,
            "collaborative_source": "hybrid" if blend is not None else "als",
            "models": {k: v for k, v in versions.items() if k in ("als", "hybrid")},
        },
        metrics={
            "validation": tuned.valid,
            "validation_protocol": "random 90/10 per user, served lists",
            "grid": tuned.grid,
        },
        data=data.info,
    )


def train(
    kinds: Sequence[str],
    source: str,
    path: Path | None,
    settings: Settings,
    *,
    progress: bool = True,
) -> dict[str, str]:
    """Train and publish each kind from one source; returns kind -> published version."""
    from batch.threads import limit_env

    limit_env()
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown artifact kind(s) {sorted(unknown)}; one of {', '.join(KINDS)}")
    bars = Bars(progress)
    store = ArtifactStore(
        Path(settings.artifacts.root),
        settings.artifacts.keep_versions,
        remote_of(settings.artifacts),
    )
    data = load_source(source, path, settings, bars)
    versions: dict[str, str] = {}
    fitted: dict[str, Fitted] = {}
    for kind, fit in (("als", fit_als), ("lightgcn", fit_lightgcn)):
        if kind in kinds:
            fitted[kind] = fit(data, settings, bars)
            versions[kind] = publish_fitted(store, kind, data, fitted[kind])
    blend: Blend | None = None
    if "hybrid" in kinds:
        versions["hybrid"], blend = train_hybrid(
            store,
            data,
            settings,
            bars,
            tags_folder=_lastfm_folder(source, path),
            fitted=fitted,
            versions=versions,
        )
    if "policy" in kinds:
        if "als" not in fitted:
            fitted["als"] = fit_als(data, settings, bars)
        versions["policy"] = train_policy(
            store, data, settings, als=fitted["als"], blend=blend, versions=versions
        )
    pass_: audio.AudioPass | None = None
    decoding = audio.Decoding.of(settings.audio)
    if "content" in kinds or "fingerprint" in kinds:
        tracks = [
            (t, str(m["audio_url"])) for t, m in sorted(data.catalog.items()) if m.get("audio_url")
        ]
        pass_ = audio.analyse(
            tracks,
            features="content" in kinds,
            fingerprints="fingerprint" in kinds,
            progress=bars("audio", len(tracks)),
            roots=settings.audio.local_roots,
            remote=Remote.of(settings),
            decoding=decoding,
        )
    if "content" in kinds:
        versions["content"] = train_content(
            store,
            data,
            cf_version=versions.get("als"),
            audio_pass=pass_,
            step=bars,
            seed=settings.batch.seed,
            roots=settings.audio.local_roots,
            remote=Remote.of(settings),
            decoding=decoding,
            vectors=settings.audio.vectors,
            encoder_config=learned_audio.config_of(settings.audio, settings.batch.seed),
        )
    if "fingerprint" in kinds:
        assert pass_ is not None
        info = {
            **data.info,
            "audio_errors": len(pass_.errors),
            **pass_.remote_info(),
            "local_audio_outside_trusted_roots": pass_.untrusted,
            "audio_seconds": round(pass_.seconds, 1),
        }
        versions["fingerprint"] = publish_fingerprints(store, pass_.hashes, data=info)
    if "taste" in kinds and (data.labels is not None or tuple(kinds) == ("taste",)):
        from batch.taste import train_taste

        versions["taste"] = train_taste(
            store,
            data,
            min_events=settings.batch.taste_min_events,
            l2=settings.batch.taste_l2,
            text_dims=settings.batch.taste_text_dims,
            full_play=settings.stream.full_play,
        )
    return versions
