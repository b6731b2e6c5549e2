"""``encore load``: datasets to events on the topics (catalog first, then interactions)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from models.io.producer import EventProducer
from models.settings import Settings

CHUNK = 20_000


def dataset_events(name: str, path: Path | None) -> tuple[list[Any], Iterable[Any], int | None]:
    """Catalog events, interaction events and (if known) how many interactions."""
    if name == "demo":
        from models.demo import generate

        now = datetime.now(UTC).replace(second=0, microsecond=0)
        demo = generate(end=now)  # recent, so sessions and trending are live
        # The packaged music clips (data extra) join the catalog with file:// audio,
        # so content, mood and identify have real audio to work on.
        from batch.audio_sources import track_events

        return [*demo.tracks, *track_events(now)], demo.interactions, len(demo.interactions)
    if name == "lastfm-2k":
        from batch.datasets import lastfm_events, read_lastfm

        data = read_lastfm(path)  # type: ignore[arg-type]
        tracks, plays = lastfm_events(data)
        return list(tracks), plays, len(data.weight)
    if name == "movielens-100k":
        from batch.datasets import movielens_events, read_movielens

        data = read_movielens()
        tracks, events = movielens_events(data)
        return list(tracks), events, None
    raise ValueError(f"unknown dataset {name}")


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


async def load_dataset(
    settings: Settings,
    name: str,
    path: Path | None,
    limit: int | None = None,
    progress: bool = True,
) -> tuple[int, int]:
    """Produce a dataset's events; returns (tracks, interactions) sent."""
    tracks, interactions, total = dataset_events(name, path)
    if limit is not None:
        interactions = itertools.islice(interactions, limit)
        total = min(total, limit) if total is not None else limit
    assert settings.kafka.bootstrap
    sent = 0
    async with EventProducer(
        settings.kafka.bootstrap,
        settings.kafka.partitions,
        max_record_bytes=settings.kafka.max_record_bytes,
    ) as producer:
        for chunk in _chunks(tracks, CHUNK):
            await producer.send_events(chunk)
        bar = tqdm(total=total, unit="ev", desc=f"load {name}", disable=not progress)
        for chunk in _chunks(interactions, CHUNK):
            await producer.send_events(chunk)
            sent += len(chunk)
            bar.update(len(chunk))
        bar.close()
    return len(tracks), sent
