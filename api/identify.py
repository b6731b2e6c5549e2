"""Identify: which catalog track is this 5-10 s clip, and what follows from it.

The clip is decoded (any format libsndfile reads: WAV, FLAC, Ogg/Opus, MP3),
mixed to mono and resampled to the fingerprint rate, then looked up in the
published landmark index (:mod:`models.fingerprint`). A match must pass the
index's own acceptance rule (enough aligned votes and a clear lead over the
runner-up); otherwise the answer says no exact match was found and offers the
catalog tracks sharing most landmarks with the clip, and their neighbours.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from api.bundle import Bundle, Fingerprints
from api.query import similar_tracks
from api.recommend import Engine, artist_key, track_info
from models import fingerprint as fp

MIN_SECONDS = 3.0
MAX_SECONDS = 30.0


class ClipError(ValueError):
    """The upload is not a usable audio clip (the message says why)."""


def decode(data: bytes) -> tuple[np.ndarray, float]:
    """Mono audio at the fingerprint rate, and the clip's length in seconds."""
    try:
        import soundfile
    except ImportError as exc:
        raise ClipError("audio decoding needs the ml extra: pip install -e '.[ml]'") from exc
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise ClipError(f"file: not a readable audio file ({exc})") from exc
    seconds = samples.shape[0] / rate
    if seconds < MIN_SECONDS or seconds > MAX_SECONDS:
        raise ClipError(
            f"file: the clip is {seconds:.1f} s; send {MIN_SECONDS:.0f}-"
            f"{MAX_SECONDS:.0f} s (5-10 s works best)"
        )
    mono = samples.mean(axis=1)
    ratio = Fraction(fp.SAMPLE_RATE, int(rate)).limit_denominator(1000)
    if ratio != 1:
        mono = resample_poly(mono, ratio.numerator, ratio.denominator)
    return np.asarray(mono, dtype=np.float32), seconds


def _brief(bundle: Bundle, track: str) -> dict[str, Any]:
    info = track_info(bundle, {}, track)
    return {
        "track_id": track,
        "title": info.get("title"),
        "artist": info.get("artist"),
        "genre": info.get("genre"),
    }


def more_from_artist(bundle: Bundle, track: str, n: int) -> list[dict[str, Any]]:
    """Other tracks by the matched track's artist, most popular first."""
    content, collab = bundle.content, bundle.collab
    artist = artist_key(track_info(bundle, {}, track))
    if content is None or artist is None:
        return []
    rows = [
        i
        for i, item in enumerate(content.items)
        if artist_key(item) == artist and content.ids[i] != track
    ]

    def popularity(i: int) -> float:
        if collab is None or content.ids[i] not in collab.row:
            return 0.0
        return float(collab.popularity[collab.row[content.ids[i]]])

    rows.sort(key=lambda i: -popularity(i))
    return [_brief(bundle, content.ids[i]) for i in rows[:n]]


async def identify(
    engine: Engine, bundle: Bundle, prints: Fingerprints | None, data: bytes, n: int = 10
) -> dict[str, Any]:
    """``POST /v1/identify``."""
    if prints is None:
        return {
            "matched": False,
            "match": None,
            "message": "no fingerprint index is published yet",
            "more_from_artist": [],
            "fans_also_like": [],
            "similar": [],
        }
    audio, seconds = await engine.pool.run(decode, data)
    found = await engine.pool.run(prints.index.query, audio, prints.min_votes, prints.min_ratio)
    base = {"clip_seconds": round(seconds, 2), "fingerprint_version": prints.version}
    if found is not None and found.accepted:
        track = prints.track_ids[found.track]
        fans = await similar_tracks(engine, bundle, track, n, exclude_artist=True)
        return {
            **base,
            "matched": True,
            "match": {
                **_brief(bundle, track),
                "votes": found.votes,
                "runner_up": found.runner_up,
                "confidence": round(1 - (found.runner_up + 1) / (found.votes + 1), 3),
            },
            "message": "exact match",
            "more_from_artist": more_from_artist(bundle, track, n),
            "fans_also_like": (fans or {}).get("items", []),
            "similar": [],
        }
    closest = prints.track_ids[found.track] if found is not None else None
    similar: list[dict[str, Any]] = []
    if closest is not None:
        near = await similar_tracks(engine, bundle, closest, n)
        similar = [_brief(bundle, closest), *(near or {}).get("items", [])][:n]
    return {
        **base,
        "matched": False,
        "match": None,
        "message": "no exact match in the catalog; these share the most acoustic landmarks "
        "with the clip"
        if similar
        else "no exact match in the catalog",
        "best_votes": found.votes if found else 0,
        "more_from_artist": [],
        "fans_also_like": [],
        "similar": similar,
    }
