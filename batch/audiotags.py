"""Tags of one audio file, read with mutagen from a file object opened read-only.

mutagen is given an open ``rb`` file object, never a path, so it cannot open
the file for writing; nothing here calls a method that saves. Common tags come
from the format's own keys (ID3 frames, Vorbis comments, MP4 atoms, ASF
attributes); ratings and play counts from where players keep them: ID3 ``POPM``
(rating 0-255 and a counter) and ``PCNT``, the FMPS keys
(``FMPS_RATING`` 0-1, ``FMPS_PLAYCOUNT``) as Vorbis comments, ID3 ``TXXX`` or
MP4 freeform atoms, a Vorbis ``RATING`` or MP4 ``rate`` (see :func:`rating_scale`)
and ASF's ``WM/SharedUserRating`` (0-99).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, BinaryIO

import mutagen

_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")

_COMMON: dict[str, tuple[str, ...]] = {
    "title": ("TIT2", "©nam", "title", "Title"),
    "artist": ("TPE1", "©ART", "artist", "Author", "TPE2", "aART", "albumartist"),
    "album": ("TALB", "©alb", "album", "WM/AlbumTitle"),
    "genre": ("TCON", "©gen", "genre", "WM/Genre"),
    "year": ("TDRC", "TYER", "TDOR", "©day", "date", "year", "originaldate", "WM/Year"),
}
_MP4_FREEFORM = "----:com.apple.iTunes:"
_RATING_KEYS = (
    "fmps_rating",
    "TXXX:FMPS_Rating",
    _MP4_FREEFORM + "FMPS_Rating",
    "rating",
    "rate",
    "WM/SharedUserRating",
)
_COUNT_KEYS = (
    "fmps_playcount",
    "TXXX:FMPS_Playcount",
    _MP4_FREEFORM + "FMPS_Playcount",
    "playcount",
    "play_count",
)


class NotAudio(ValueError):
    """mutagen recognised no audio format in the file."""


@dataclass(frozen=True)
class AudioTags:
    """What one file says about itself. ``rating`` is 0-1 (None: unrated)."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    duration_ms: int | None = None
    rating: float | None = None
    play_count: int = 0


def _text(value: Any) -> str | None:
    """The first text of a tag value (an ID3 frame, a list, bytes or a scalar)."""
    if value is None:
        return None
    genres = getattr(value, "genres", None)  # ID3 TCON resolves "(13)" to "Pop"
    if genres:
        value = genres
    elif hasattr(value, "text"):
        value = value.text
    if isinstance(value, list | tuple):
        value = value[0] if value else None
        return _text(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip().replace("\x00", "")
    return text or None


def _lookup(tags: Any, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        try:
            value = tags.get(key)
        except (AttributeError, KeyError, ValueError, TypeError):
            continue
        text = _text(value)
        if text:
            return text[:500]
    return None


def _number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if value == value and value >= 0 else None  # not NaN, not negative


def rating_scale(text: str, key: str) -> float | None:
    """A rating as written under ``key`` on 0-1 (None: unrated or unreadable).

    FMPS ratings are 0-1; ASF's are 0-99; elsewhere a decimal up to 1 is 0-1 and a
    whole number is stars of 5, then 10, then a percentage, then POPM's 0-255."""
    value = _number(text)
    if not value:
        return None
    if "fmps" in key.lower():
        return min(value, 1.0)
    if key == "WM/SharedUserRating":
        return min(value / 99.0, 1.0)
    if value <= 1.0 and not value.is_integer():
        return value
    for top in (5.0, 10.0, 100.0, 255.0):
        if value <= top:
            return value / top
    return 1.0


def _ratings(tags: Any) -> tuple[float | None, int]:
    rating: float | None = None
    count = 0
    getall = getattr(tags, "getall", None)
    if getall is not None:  # ID3
        for frame in getall("POPM"):
            if frame.rating:
                rating = max(rating or 0.0, frame.rating / 255.0)
            count = max(count, int(getattr(frame, "count", 0) or 0))
        for frame in getall("PCNT"):
            count = max(count, int(frame.count or 0))
    if rating is None:
        for key in _RATING_KEYS:
            rating = rating_scale(_lookup(tags, (key,)) or "", key)
            if rating is not None:
                break
    if not count:
        value = _number(_lookup(tags, _COUNT_KEYS))
        count = int(value) if value else 0
    return rating, count


def read_tags(fileobj: BinaryIO) -> AudioTags:
    """Tags of an audio file open for reading; :class:`NotAudio` when it is none.

    mutagen's own errors (a damaged header) propagate as ``mutagen.MutagenError``."""
    audio = mutagen.File(fileobj)
    if audio is None:
        raise NotAudio("no audio format recognised")
    length = getattr(audio.info, "length", None) if audio.info is not None else None
    duration_ms = int(length * 1000) if length and 0 < length < 1_000_000 else None
    tags = audio.tags
    if tags is None:
        return AudioTags(duration_ms=duration_ms)
    year_text = _lookup(tags, _COMMON["year"])
    match = _YEAR.search(year_text or "")
    year = int(match.group(1)) if match and 1000 <= int(match.group(1)) <= 2200 else None
    rating, count = _ratings(tags)
    return AudioTags(
        title=_lookup(tags, _COMMON["title"]),
        artist=_lookup(tags, _COMMON["artist"]),
        album=_lookup(tags, _COMMON["album"]),
        genre=_lookup(tags, _COMMON["genre"]),
        year=year,
        duration_ms=duration_ms,
        rating=rating,
        play_count=min(count, 10_000_000),
    )
