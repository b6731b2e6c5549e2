"""A listener's own music folder as catalog and interaction events, read strictly read-only.

:func:`scan_library` walks a folder without following symbolic links, opens each
regular file with ``O_RDONLY | O_NOFOLLOW`` (never for writing; mutagen gets the
open file object, not a path), reads its tags (:mod:`batch.audiotags`) and hashes
its bytes. Nothing under the folder is written, moved, renamed or touched: the
incremental state lives elsewhere (:func:`state_path`, under the run directory).

A track's id comes from its content hash (``local-<16 hex>``), so the same file
at another path is the same track and copies are reported as duplicates. A
rescan reads only files whose size or modification time changed since the last
scan, and :func:`library_events` builds events only for new or changed tracks:
a ``NewTrack`` with a ``file://`` audio link, and for the named listener a
``Like`` (rating of 4 stars or more), a ``Dislike`` (1 star) and one ``Play``
standing for the embedded play count. Event ids derive from the track, the
listener and the kind, so a resend is dropped by the stream's dedup window.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from mutagen import MutagenError
from tqdm import tqdm

from batch.audiotags import AudioTags, NotAudio, read_tags
from models.events import Dislike, Like, NewTrack, Play

CHUNK = 1 << 20
MAX_URL = 2_048
LIKE_AT = 0.75
"""Ratings at or above this (4 of 5 stars; POPM 196/255) send a Like."""
DISLIKE_BELOW = 0.25
"""Ratings above 0 and below this (1 of 5 stars; POPM 1-63) send a Dislike."""
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


@dataclass(frozen=True)
class FileRecord:
    """What the state keeps per file: enough to skip it next time unless it changed."""

    size: int
    mtime_ns: int
    hash: str
    track_id: str


@dataclass
class ScanResult:
    """One scan: the next state, what to send, and the summary's lists."""

    files: dict[str, FileRecord] = field(default_factory=dict)
    send: list[tuple[str, FileRecord, AudioTags]] = field(default_factory=list)
    known_tracks: set[str] = field(default_factory=set)
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def track_id_of(content_hash: str) -> str:
    """The catalog id of a local file with this content hash."""
    return f"local-{content_hash[:16]}"


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


def state_path(run_dir: Path, root: Path) -> Path:
    """Where the scan state of folder ``root`` lives: outside it, under the run directory."""
    real = Path(os.path.realpath(root))
    path = Path(os.path.realpath(run_dir)) / "scan" / f"{_digest(str(real))}.json"
    if path.is_relative_to(real):
        raise ValueError(
            f"the run directory {run_dir} lies inside {root}; the scan never writes there"
        )
    return path


def load_state(path: Path) -> dict[str, FileRecord]:
    """The previous scan's files (relative path -> record); empty when none or unreadable."""
    try:
        doc = orjson.loads(path.read_bytes())
        return {rel: FileRecord(*rec) for rel, rec in doc["files"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save_state(path: Path, root: Path, files: Mapping[str, FileRecord]) -> None:
    """Write the state atomically (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "root": os.path.realpath(root),
        "files": {
            rel: [r.size, r.mtime_ns, r.hash, r.track_id] for rel, r in sorted(files.items())
        },
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(doc))
    os.replace(tmp, path)


def walk(root: Path, skipped: dict[str, list[str]]) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files under ``root`` (relative POSIX path, lstat), in sorted order.

    Symbolic links are never followed (listed under ``symlink``), other non-regular
    files are listed under ``special``, unreadable directories under ``unreadable``."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
        except OSError:
            skipped["unreadable"].append(rel_dir or ".")
            continue
        files = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                skipped["unreadable"].append(rel)
                continue
            if stat.S_ISLNK(st.st_mode):
                skipped["symlink"].append(rel)
            elif stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            elif stat.S_ISREG(st.st_mode):
                files.append((rel, st))
            else:
                skipped["special"].append(rel)
        yield from reversed(files)


def _open_read_only(path: Path) -> int:
    try:
        return os.open(path, _OPEN_FLAGS | _NOATIME)
    except PermissionError:
        if not _NOATIME:
            raise
        return os.open(path, _OPEN_FLAGS)  # O_NOATIME needs the owner; plain read-only


def read_file(path: Path) -> tuple[os.stat_result, str, AudioTags]:
    """Stat, content hash and tags of one file, opened read-only (never for writing)."""
    fd = _open_read_only(path)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotAudio("not a regular file")
        tags = read_tags(f)
        f.seek(0)
        h = hashlib.blake2b(digest_size=16)
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return st, h.hexdigest(), tags


def scan_library(
    root: Path,
    previous: Mapping[str, FileRecord],
    *,
    max_bytes: int,
    progress: bool = False,
) -> ScanResult:
    """Walk ``root`` read-only and compare with ``previous`` (see the module doc)."""
    result = ScanResult(known_tracks={r.track_id for r in previous.values()})
    entries = list(walk(root, result.skipped))
    status: dict[str, str] = {}
    tags_of: dict[str, AudioTags] = {}
    bar = tqdm(entries, unit="file", desc="scan", file=sys.stderr, disable=not progress)
    for rel, st in bar:
        if st.st_size > max_bytes:
            result.skipped["too_large"].append(rel)
            continue
        prev = previous.get(rel)
        if prev is not None and (prev.size, prev.mtime_ns) == (st.st_size, st.st_mtime_ns):
            result.files[rel] = prev
            status[rel] = "unchanged"
            continue
        path = root / rel
        if len(path.absolute().as_uri()) > MAX_URL:
            result.skipped["path_too_long"].append(rel)
            continue
        try:
            fst, content_hash, tags = read_file(path)
        except NotAudio:
            result.skipped["not_audio"].append(rel)
            continue
        except (OSError, MutagenError):
            result.skipped["unreadable"].append(rel)
            continue
        record = FileRecord(fst.st_size, fst.st_mtime_ns, content_hash, track_id_of(content_hash))
        result.files[rel] = record
        tags_of[rel] = tags
        if prev is None:
            status[rel] = "new"
        else:
            status[rel] = "unchanged" if prev.hash == content_hash else "changed"
    bar.close()
    by_hash: dict[str, list[str]] = defaultdict(list)
    for rel in sorted(result.files):
        by_hash[result.files[rel].hash].append(rel)
    for paths in by_hash.values():
        # keep a path already sent (an unchanged one) so a new copy never moves the track
        keep = next((p for p in paths if status[p] == "unchanged"), paths[0])
        for rel in paths:
            if rel != keep:
                result.duplicates.append((keep, rel))
        getattr(result, status[keep]).append(keep)
        if status[keep] != "unchanged":
            result.send.append((keep, result.files[keep], tags_of[keep]))
    result.duplicates.sort()
    seen = {rel for rel, _ in entries}
    result.removed = sorted(set(previous) - seen)
    return result


def _artist_id(artist: str | None) -> str | None:
    return f"local-artist-{_digest(artist.casefold())[:16]}" if artist else None


def library_events(
    root: Path,
    send: Iterable[tuple[str, FileRecord, AudioTags]],
    known_tracks: set[str],
    user_id: str,
    now: datetime,
) -> tuple[list[Any], list[Any]]:
    """Catalog events and the listener's interaction events for the tracks to send.

    Interactions go only with tracks the previous scan did not know (a file moved
    to a new path gets a new audio link, not a second set of plays)."""
    tracks: list[Any] = []
    interactions: list[Any] = []
    for rel, record, tags in send:
        tid = record.track_id
        url = (root / rel).absolute().as_uri()
        tracks.append(
            NewTrack(
                event_id=f"scan-{_digest(tid, url)}",
                occurred_at=now,
                track_id=tid,
                title=tags.title or Path(rel).stem[:500],
                artist=tags.artist,
                artist_id=_artist_id(tags.artist),
                album=tags.album,
                genre=tags.genre,
                year=tags.year,
                duration_ms=tags.duration_ms,
                audio_url=url,
            )
        )
        if tid in known_tracks:
            continue
        base = {"occurred_at": now, "user_id": user_id, "track_id": tid}
        rating = tags.rating
        if rating is not None and rating >= LIKE_AT:
            interactions.append(Like(event_id=f"scan-{_digest(user_id, tid, 'like')}", **base))
        elif rating is not None and 0 < rating < DISLIKE_BELOW:
            interactions.append(
                Dislike(event_id=f"scan-{_digest(user_id, tid, 'dislike')}", **base)
            )
        if tags.play_count > 0:
            interactions.append(
                Play(
                    event_id=f"scan-{_digest(user_id, tid, 'play')}",
                    ms_played=min(tags.duration_ms or 0, 1_000_000_000),
                    duration_ms=tags.duration_ms,
                    completion=1.0,
                    count=tags.play_count,
                    **base,
                )
            )
    return tracks, interactions
