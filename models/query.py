"""Free-text queries: what kind of query it is, and what mood it asks for (pure).

Mood is valence (negative .. positive) and arousal (calm .. energetic), both in
[-1, 1]. It comes from two sources, blended:

* a lexicon of mood words and phrases with hand-assigned values (the content
  artifact's ``lexicon.json``), matched as whole words or phrases;
* a linear regression from the query's text embedding (``text_to_mood``), so a
  query with no lexicon word ("i miss my ex") still lands somewhere sensible.

With lexicon hits the blend leans on them (they are explicit); without, the
regression alone decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

QUERY_TYPES = ("mood", "genre", "artist", "attribute", "free")
ATTRIBUTE_WORDS = frozenset(
    {
        "fast",
        "slow",
        "acoustic",
        "instrumental",
        "live",
        "loud",
        "quiet",
        "upbeat",
        "danceable",
        "vocal",
        "piano",
        "guitar",
        "electronic",
        "bpm",
        "tempo",
        "short",
        "long",
    }
)
_DECADE = re.compile(r"\b(?:19|20)?([0-9])0s\b")
_WORD = re.compile(r"[a-z0-9']+")

WEIGHTS_BY_TYPE: dict[str, dict[str, float]] = {
    "mood": {"text": 0.3, "mood": 0.5, "audio": 0.1, "popularity": 0.1},
    "genre": {"text": 0.6, "mood": 0.1, "audio": 0.15, "popularity": 0.15},
    "artist": {"text": 0.7, "mood": 0.05, "audio": 0.15, "popularity": 0.1},
    "attribute": {"text": 0.4, "mood": 0.2, "audio": 0.3, "popularity": 0.1},
    "free": {"text": 0.5, "mood": 0.3, "audio": 0.1, "popularity": 0.1},
}
"""Blend weights of the query route's signals, adapted to the query type."""


@dataclass(frozen=True)
class Mood:
    """Detected mood of a query."""

    valence: float
    arousal: float
    words: tuple[str, ...]
    source: str  # "lexicon", "regression", "blend" or "none"

    @property
    def label(self) -> str:
        """A two-word description, e.g. 'calm, positive'."""
        energy = (
            "energetic" if self.arousal > 0.25 else "calm" if self.arousal < -0.25 else "steady"
        )
        tone = "happy" if self.valence > 0.25 else "sad" if self.valence < -0.25 else "neutral"
        return f"{energy}, {tone}"


def tokens(text: str) -> list[str]:
    """Lower-case word tokens."""
    return _WORD.findall(text.lower())


def lexicon_hits(text: str, lexicon: Mapping[str, tuple[float, float]]) -> list[str]:
    """Lexicon entries (words or phrases) found in the text, longest first, no overlaps."""
    words = tokens(text)
    joined = " " + " ".join(words) + " "
    hits: list[str] = []
    for entry in sorted(lexicon, key=lambda e: (-len(e), e)):
        needle = " " + " ".join(tokens(entry)) + " "
        if needle.strip() and needle in joined:
            hits.append(entry)
            joined = joined.replace(needle, " | ")
    return hits


def detect_mood(
    text: str,
    embedding: np.ndarray | None,
    lexicon: Mapping[str, tuple[float, float]],
    coef: np.ndarray | None,
    bias: np.ndarray | None,
    lexicon_weight: float = 0.6,
) -> Mood:
    """Valence/arousal of a query from the lexicon and the embedding regression."""
    hits = lexicon_hits(text, lexicon)
    lex = np.mean([lexicon[h] for h in hits], axis=0) if hits else None
    reg = None
    if embedding is not None and coef is not None:
        reg = embedding.astype(np.float64) @ coef.astype(np.float64)
        if bias is not None:
            reg = reg + bias
        reg = np.clip(reg, -1.0, 1.0)
    if lex is not None and reg is not None:
        v, a = lexicon_weight * lex + (1 - lexicon_weight) * reg
        return Mood(float(v), float(a), tuple(hits), "blend")
    if lex is not None:
        return Mood(float(lex[0]), float(lex[1]), tuple(hits), "lexicon")
    if reg is not None:
        return Mood(float(reg[0]), float(reg[1]), (), "regression")
    return Mood(0.0, 0.0, (), "none")


def detect_type(
    text: str,
    *,
    genres: Iterable[str],
    artists: Iterable[str],
    lexicon: Mapping[str, tuple[float, float]],
) -> str:
    """The query's type: artist, genre, attribute, mood, or free text."""
    low = " " + " ".join(tokens(text)) + " "
    for a in artists:
        name = " " + " ".join(tokens(a)) + " "
        if len(name.strip()) >= 3 and name in low:
            return "artist"
    for g in genres:
        name = " " + " ".join(tokens(g)) + " "
        if name.strip() and name in low:
            return "genre"
    words = set(tokens(text))
    if words & ATTRIBUTE_WORDS or _DECADE.search(text.lower()):
        return "attribute"
    if lexicon_hits(text, lexicon):
        return "mood"
    return "free"


def mood_similarity(moods: np.ndarray, target: tuple[float, float]) -> np.ndarray:
    """Closeness of tracks' (valence, arousal) to a target, in [0, 1]."""
    d = np.linalg.norm(moods - np.asarray(target, dtype=np.float32), axis=1)
    return np.asarray(1.0 - d / np.sqrt(8.0), dtype=np.float32)
