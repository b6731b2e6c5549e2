"""Snapshot the event log into Parquet, then train from the snapshot.

Training reads the ``tracks`` and ``interactions`` topics from the earliest
offset with :class:`models.io.kafka_read.PartitionReader` (no group, nothing
committed, so the live workers are untouched), up to the high watermark each
partition had when the read began, decodes records exactly as the workers do
(:func:`models.codec.decode_record`, events from the future measured from each
record's broker time; what the workers would dead-letter is counted and
skipped) and writes two Parquet files plus ``meta.json`` with the
end offset of every partition. Why a snapshot instead of training straight
from Kafka: a training run is then repeatable (same files, same model), the
manifest can name the exact offsets it covers, and evaluation or a second
model reads the files instead of the broker.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.data import (
    TrainData,
    catalog_from_columns,
    from_columns,
    interaction_columns,
    track_columns,
)
from models.codec import Decoded, decode_record, not_after_ms
from models.topics import INTERACTIONS, TRACKS

if TYPE_CHECKING:
    from models.io.kafka_read import PartitionReader

META = "meta.json"
Progress = Callable[[str, int, int], None]
"""Called as (topic, records read, records to read)."""


Decoder = Callable[..., Decoded]
"""Decodes one record value (``max_bytes`` keyword) into events and rejected parts."""


async def _read_topic(
    reader: PartitionReader,
    topic: str,
    partitions: int,
    max_bytes: int,
    progress: Progress | None,
    decode: Decoder = decode_record,
    keep: Callable[[Any], bool] | None = None,
    max_skew_ms: int | None = None,
) -> tuple[list[Any], dict[int, int], int]:
    ends = dict.fromkeys(range(partitions), 0)
    events: list[Any] = []
    rejected = read = 0
    async for batch in reader.read(topic, range(partitions)):
        for m in batch.records:
            if max_skew_ms is None:
                decoded = decode(m.value, max_bytes=max_bytes)
            else:
                limit = not_after_ms(m.timestamp, int(time.time() * 1000), max_skew_ms)
                decoded = decode(m.value, max_bytes=max_bytes, not_after_ms=limit)
            events.extend(
                decoded.events if keep is None else [e for e in decoded.events if keep(e)]
            )
            rejected += len(decoded.rejected)
        ends[batch.partition] = batch.records[-1].offset + 1
        read += len(batch.records)
        if progress is not None and batch.total is not None:
            progress(topic, read, batch.total)
    return events, ends, rejected


async def read_topics(
    bootstrap: str,
    decoders: Mapping[str, Decoder],
    *,
    partitions: int,
    max_bytes: int = 1_048_576,
    progress: Progress | None = None,
    keep: Callable[[Any], bool] | None = None,
    max_skew_ms: int | None = None,
) -> dict[str, tuple[list[Any], dict[int, int], int]]:
    """Read topics from the beginning up to their high watermarks, in the given order.

    Returns per topic: the decoded events (those ``keep`` accepts), the end offset
    read per partition, and the count of records or parts that did not decode.
    With ``max_skew_ms`` (decoders that take ``not_after_ms``), events dated more
    than that after their record's broker time are counted as not decoded.
    """
    from models.io.kafka_read import PartitionReader

    async with PartitionReader(bootstrap) as reader:
        return {
            topic: await _read_topic(
                reader, topic, partitions, max_bytes, progress, decode, keep, max_skew_ms
            )
            for topic, decode in decoders.items()
        }


async def snapshot_topics(
    bootstrap: str,
    out_dir: Path,
    *,
    partitions: int,
    max_bytes: int = 1_048_576,
    progress: Progress | None = None,
    max_skew_ms: int = 300_000,
) -> Path:
    """Read both topics from the beginning into ``out_dir/<time>/``; returns that folder."""
    read = await read_topics(
        bootstrap,
        {TRACKS: decode_record, INTERACTIONS: decode_record},
        partitions=partitions,
        max_bytes=max_bytes,
        progress=progress,
        max_skew_ms=max_skew_ms,
    )
    tracks, track_ends, bad_tracks = read[TRACKS]
    plays, play_ends, bad_plays = read[INTERACTIONS]
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.time_ns() % 1_000_000:06d}"
    tmp = out_dir / f".{name}.tmp"
    tmp.mkdir(parents=True)
    tracks = [e for e in tracks if e.type == "track"]
    plays = [e for e in plays if e.type in {"play", "skip", "like", "unlike", "dislike"}]
    pq.write_table(pa.table(interaction_columns(plays)), tmp / "interactions.parquet")
    pq.write_table(pa.table(track_columns(tracks)), tmp / "tracks.parquet")
    meta = {
        "created_at": time.time(),
        "bootstrap": bootstrap,
        "offsets": {
            TRACKS: {str(p): o for p, o in track_ends.items()},
            INTERACTIONS: {str(p): o for p, o in play_ends.items()},
        },
        "events": {TRACKS: len(tracks), INTERACTIONS: len(plays)},
        "rejected": {TRACKS: bad_tracks, INTERACTIONS: bad_plays},
    }
    (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    final = out_dir / name
    tmp.rename(final)
    return final


def latest(out_dir: Path) -> Path | None:
    """The newest complete snapshot under ``out_dir``."""
    if not out_dir.is_dir():
        return None
    done = sorted(
        p for p in out_dir.iterdir() if (p / META).is_file() and not p.name.startswith(".")
    )
    return done[-1] if done else None


def prune(out_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` snapshots."""
    if not out_dir.is_dir():
        return
    done = sorted(
        p for p in out_dir.iterdir() if (p / META).is_file() and not p.name.startswith(".")
    )
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def read(path: Path, full_play: float = 0.8) -> TrainData:
    """Training data from a snapshot folder (manifest ``data`` carries its offsets)."""
    meta = json.loads((path / META).read_text())
    interactions = pq.read_table(path / "interactions.parquet").to_pydict()
    tracks = pq.read_table(path / "tracks.parquet").to_pydict()
    info = {"snapshot": path.name, "offsets": meta["offsets"], "rejected": meta["rejected"]}
    if not interactions.get("event_id"):
        raise ValueError(f"snapshot {path} holds no interactions")
    return from_columns(
        "events", interactions, catalog_from_columns(tracks), full_play=full_play, info=info
    )
