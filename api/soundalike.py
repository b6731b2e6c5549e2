"""Identify's answer for a clip that matches nothing: the tracks that sound most like it.

The clip's first 30 s get the same librosa features as catalog audio
(:mod:`models.audiofeatures`), placed in the published audio space by the content
version's reducer, and compared with the tracks whose audio vector comes from their
own sound (imputed vectors are guesses from metadata, not sound), optionally only
some genres, a mood word's quadrant or years (:class:`Wanted`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.bundle import Bundle
from api.recommend import track_info
from models import audiofeatures as af
from models.rerank import Filters, genre_and_year
from models.serving import Content


class ClipWanted(ValueError):
    """A filter the catalog cannot apply (the message says why)."""


def brief(bundle: Bundle, track: str) -> dict[str, Any]:
    """A track in identify's answers: id, title, artist, genre."""
    info = track_info(bundle, {}, track)
    return {
        "track_id": track,
        "title": info.get("title"),
        "artist": info.get("artist"),
        "genre": info.get("genre"),
    }


@dataclass(frozen=True)
class Wanted:
    """What the tracks offered for an unmatched clip may be: the genre and year filters
    the other routes take, and a ``mood`` word from the content version's lexicon
    (valence and arousal on the same sides as the word's)."""

    filters: Filters = field(default_factory=Filters)
    mood: str | None = None

    def mask(self, bundle: Bundle, rows: np.ndarray) -> np.ndarray:
        """Which of these content rows pass (content rows are the first item rows)."""
        items, content = bundle.items, bundle.content
        genre = items.genre_lower[items.facts.genre[rows]]
        ok = genre_and_year(self.filters, genre, items.facts.year[rows], items.lower.code.get)
        if self.mood is not None and content is not None:
            v, a = content.lexicon[self.mood]
            m = np.asarray(content.mood[rows], dtype=np.float64)
            ok &= ((m[:, 0] >= 0) == (v >= 0)) & ((m[:, 1] >= 0) == (a >= 0))
        return ok


def check_mood(content: Content | None, mood: str | None) -> None:
    """Refuse a mood word the served content version does not know (a 422)."""
    if mood is None:
        return
    if content is None or mood not in content.lexicon:
        known = ", ".join(sorted(content.lexicon)[:12]) if content else ""
        raise ClipWanted(
            f"mood: {mood!r} is not a mood word of the catalog"
            + (f"; for example {known}" if known else "")
        )


_HEARD: dict[str, np.ndarray] = {}


def _heard_rows(content: Content) -> np.ndarray:
    """Rows of the tracks whose audio vector comes from their own sound (not imputed from
    their metadata), once per content version; every row for a version that does not
    say."""
    rows = _HEARD.get(content.version)
    if rows is None:
        said = [it.get("has_audio") for it in content.items]
        known = any(h is not None for h in said)
        rows = np.flatnonzero([bool(h) for h in said]) if known else np.arange(len(said))
        _HEARD.clear()
        _HEARD[content.version] = rows
    return rows


def sounds_like(
    bundle: Bundle, head: np.ndarray, n: int, wanted: Wanted
) -> list[dict[str, Any]] | None:
    """The catalog tracks with real audio nearest the clip in the published audio space
    (its audio features placed by the content version's reducer), filtered; None when
    the served content has no such space (no audio, or learned audio vectors)."""
    content = bundle.content
    if content is None or content.audio is None or content.audio_space is None:
        return None
    if head.size < af.N_FFT:
        return None
    vec = af.embed_clip(head, content.audio_space)
    rows = _heard_rows(content)
    keep = wanted.mask(bundle, rows)
    rows = rows[keep]
    scores = np.asarray(content.audio[rows] @ vec, dtype=np.float64)
    best = np.argsort(-scores, kind="stable")[:n].tolist()
    return [
        {**brief(bundle, content.ids[int(rows[i])]), "similarity": round(scores[i], 4)}
        for i in best
    ]
