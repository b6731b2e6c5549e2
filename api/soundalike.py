"""Identify's answer for a clip that matches nothing: the tracks that sound most like it.

The clip's first 30 s get the same librosa features as catalog audio
(:mod:`models.audiofeatures`), placed in the published audio space by the content
version's reducer, and compared with the tracks whose audio vector comes from their
own sound (imputed vectors are guesses from metadata, not sound), optionally only
some genres, a mood word's quadrant or years (:class:`Wanted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from api.bundle import Bundle
from api.recommend import track_info
from models import audiofeatures as af
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
    """What the tracks offered for an unmatched clip may be (``genres`` in lower case; a
    ``mood`` word from the content version's lexicon: valence and arousal on the same
    side as the word's)."""

    genres: frozenset[str] = frozenset()
    mood: str | None = None
    year_min: int | None = None
    year_max: int | None = None

    def allows(self, content: Content, row: int) -> bool:
        item = content.items[row]
        if self.genres and str(item.get("genre") or "").lower() not in self.genres:
            return False
        if self.year_min is not None or self.year_max is not None:
            year = item.get("year")
            if not isinstance(year, int):
                return False
            if self.year_min is not None and year < self.year_min:
                return False
            if self.year_max is not None and year > self.year_max:
                return False
        if self.mood is not None:
            v, a = content.lexicon[self.mood]
            tv, ta = (float(x) for x in content.mood[row])
            if (tv >= 0) != (v >= 0) or (ta >= 0) != (a >= 0):
                return False
        return True


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
    scores = np.asarray(content.audio[rows] @ vec, dtype=np.float64)
    out = []
    for i in np.argsort(-scores, kind="stable").tolist():
        r = int(rows[i])
        if wanted.allows(content, r):
            out.append({**brief(bundle, content.ids[r]), "similarity": round(scores[i], 4)})
            if len(out) == n:
                break
    return out
