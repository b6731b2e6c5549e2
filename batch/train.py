"""``encore train``: data from a source, models trained and published as artifacts.

Sources: ``demo`` (the seeded generator, plus the packaged audio clips as extra
tracks with ``file://`` links when the ``data`` extra is installed), ``events``
(a Parquet snapshot of the topics, taken now or read from ``--path``),
``lastfm-2k`` (a HetRec folder) and ``movielens-100k`` (bundled with recbole).

Collaborative models hold out a tenth of each user's pairs (seeded) to measure
validation metrics and, for LightGCN, to stop early; then they are refitted on
everything with the chosen settings and epoch count, and published. The
content artifact maps into the ``als`` version this run published (or the
current one). Audio is decoded once per run for both content and fingerprints.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from batch import audio, audio_sources
from batch.als import ALS
from batch.content import train_content
from batch.data import TrainData, binary, from_dataset, from_events
from batch.fingerprint import publish_fingerprints
from batch.lightgcn import LightGCN
from batch.metrics import evaluate
from batch.publish import publish_factors
from batch.split import random_split
from models.io.artifacts import ArtifactStore
from models.settings import Settings

SOURCES = ("demo", "events", "lastfm-2k", "movielens-100k")
KINDS = ("als", "lightgcn", "content", "fingerprint")
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
                )
            )
            snapshot.prune(out, settings.artifacts.keep_versions)
        return snapshot.read(folder, settings.stream.full_play)
    if source == "lastfm-2k":
        from batch.datasets import read_lastfm

        env = os.environ.get("ENCORE_LASTFM_DIR")
        folder = path or (Path(env) if env else None)
        return from_dataset(read_lastfm(folder))  # type: ignore[arg-type]
    if source == "movielens-100k":
        from batch.datasets import read_movielens

        return from_dataset(read_movielens())
    raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")


def _validation_split(data: TrainData, seed: int) -> Any:
    return random_split(data.counts, seed, (0.9, 0.1, 0.0))


def train_als(store: ArtifactStore, data: TrainData, settings: Settings, bars: Bars) -> str:
    """Fit ALS on 90%, measure the held-out 10%, refit on all, publish ``als``."""
    b = settings.batch

    def make() -> ALS:
        return ALS(
            b.factors, b.als_regularization, b.als_iterations, b.confidence, b.als_alpha, b.seed
        )

    split = _validation_split(data, b.seed)
    held = make().fit(split.train, progress=lambda _i: None)
    metrics = evaluate(held.scores, binary(split.train), split.valid).metrics
    model = make().fit(data.counts, progress=bars("als", b.als_iterations))
    return publish_factors(
        store,
        "als",
        data,
        model.user_factors,
        model.item_factors,
        params=model.params(),
        metrics={"validation": metrics, "validation_protocol": "random 90/10 per user"},
    )


def train_lightgcn(store: ArtifactStore, data: TrainData, settings: Settings, bars: Bars) -> str:
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
    return publish_factors(
        store,
        "lightgcn",
        data,
        model.user_factors,
        model.item_factors,
        params={**model.params(), "epochs": best},
        metrics=metrics,
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
    store = ArtifactStore(Path(settings.artifacts.root), settings.artifacts.keep_versions)
    data = load_source(source, path, settings, bars)
    versions: dict[str, str] = {}
    if "als" in kinds:
        versions["als"] = train_als(store, data, settings, bars)
    if "lightgcn" in kinds:
        versions["lightgcn"] = train_lightgcn(store, data, settings, bars)
    pass_: audio.AudioPass | None = None
    if "content" in kinds or "fingerprint" in kinds:
        tracks = [
            (t, str(m["audio_url"])) for t, m in sorted(data.catalog.items()) if m.get("audio_url")
        ]
        pass_ = audio.analyse(
            tracks,
            features="content" in kinds,
            fingerprints="fingerprint" in kinds,
            progress=bars("audio", len(tracks)),
        )
    if "content" in kinds:
        versions["content"] = train_content(
            store,
            data,
            cf_version=versions.get("als"),
            audio_pass=pass_,
            step=bars,
            seed=settings.batch.seed,
        )
    if "fingerprint" in kinds:
        assert pass_ is not None
        info = {
            **data.info,
            "audio_errors": len(pass_.errors),
            "remote_audio_not_fetched": pass_.remote,
            "audio_seconds": round(pass_.seconds, 1),
        }
        versions["fingerprint"] = publish_fingerprints(store, pass_.hashes, data=info)
    return versions
