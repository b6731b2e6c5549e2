"""What a free-text query asks for: a catalog name, a genre, a mood or situation, or a mix (pure).

The question is how much of the query a catalog name explains. The query's
content words (lower-case, without stopwords and request filler such as
"play", "songs", "something") are matched against every artist and track name
as whole-word phrases; a name *covers* the words it matches.

* ``artist``: one name covers at least :data:`NAME_COVERAGE` of the content
  words ("radiohead", "songs by the beatles"), and the name is not itself a
  descriptive word of the catalog (an artist called "Calm" does not turn the
  query "calm" into an artist query) and no word left over is descriptive.
* ``genre``: the content words are mostly a genre of the catalog ("some jazz
  please").
* ``mix``: a name covers part of the query and descriptive words the rest
  ("sad songs like radiohead").
* ``mood``: everything else, the default. A single word that happens to be a
  name ("songs for a long night *drive*") is not enough to leave it.

Mood queries go to the catalog's descriptive space (tags, valence/arousal,
audio), artist queries to name text (see :mod:`models.query`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

INTENTS = ("artist", "genre", "mood", "mix")
NAME_COVERAGE = 0.6
"""Share of the query's content words one name must cover to make it an artist query."""
MIX_COVERAGE = 0.4
"""Least share a multi-word name must cover to make a mix of artist and mood."""
MAX_NAME_WORDS = 8
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    {
        "a", "an", "and", "the", "of", "to", "in", "on", "for", "by", "with", "from", "at", "as",
        "is", "are", "was", "be", "it", "its", "this", "that", "my", "me", "i", "im", "you",
        "your", "our", "we", "us", "some", "any", "so", "very", "just", "or", "but", "into",
        "about", "after", "before",
    }
)  # fmt: skip
FILLER = frozenset(
    {
        "play", "playing", "put", "give", "find", "like", "similar", "songs",
        "song", "music", "tracks", "track", "tunes", "tune", "something", "stuff", "please",
        "plays", "listen", "listening", "hear", "artist", "band", "bands", "by",
    }
)  # fmt: skip
"""Request words that say nothing about what is wanted."""


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters and digits of any script; apostrophes split)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """The words of a query that can name or describe something."""
    return [w for w in words(text) if w not in STOPWORDS and w not in FILLER]


@dataclass(frozen=True)
class NameIndex:
    """Catalog names as word tuples -> item rows (artists and track titles)."""

    names: Mapping[tuple[str, ...], tuple[int, ...]]

    @staticmethod
    def build(names: Iterable[tuple[str, int]]) -> NameIndex:
        """From (name, item row) pairs; names of no word are skipped."""
        out: dict[tuple[str, ...], list[int]] = {}
        for name, row in names:
            key = tuple(words(name))
            if key and len(key) <= MAX_NAME_WORDS:
                out.setdefault(key, []).append(row)
        return NameIndex({k: tuple(v) for k, v in out.items()})

    def matches(self, tokens: list[str]) -> list[tuple[tuple[str, ...], int, int]]:
        """(name, start, end) of every name found as a phrase in ``tokens``, longest first."""
        found = []
        for n in range(min(MAX_NAME_WORDS, len(tokens)), 0, -1):
            for s in range(len(tokens) - n + 1):
                key = tuple(tokens[s : s + n])
                if key in self.names:
                    found.append((key, s, s + n))
        return found


@dataclass(frozen=True)
class Intent:
    """The decided intent, the name it rests on (if any) and the words left for mood."""

    kind: str
    name: tuple[str, ...] = ()
    rows: tuple[int, ...] = ()
    coverage: float = 0.0
    rest: tuple[str, ...] = field(default_factory=tuple)
    genre: str | None = None


def classify(
    query: str,
    names: NameIndex,
    *,
    genres: Iterable[str] = (),
    descriptive: frozenset[str] = frozenset(),
) -> Intent:
    """Decide a query's intent (rules: module doc).

    ``descriptive`` holds the catalog's descriptive vocabulary (tags, mood words),
    lower-case; ``genres`` its genre names.
    """
    tokens = words(query)
    content = [w for w in tokens if w not in STOPWORDS and w not in FILLER]
    if not content:
        return Intent("mood")
    wanted = set(content)
    best: tuple[tuple[str, ...], float] | None = None
    for name, _s, _e in names.matches(tokens):
        covered = len(set(name) & wanted) / len(wanted)
        if covered and (best is None or covered > best[1]):
            best = (name, covered)
    genre_words = {g: tuple(words(g)) for g in genres}
    genre = _genre_of(content, genre_words)
    if best is not None:
        name, covered = best
        phrase = " ".join(name)
        rest = tuple(w for w in content if w not in set(name))
        described = any(w in descriptive for w in rest)
        if covered >= NAME_COVERAGE and phrase not in descriptive and not described and not genre:
            return Intent("artist", name, names.names[name], covered, rest)
        if covered >= MIX_COVERAGE and rest and phrase not in descriptive:
            return Intent("mix", name, names.names[name], covered, rest)
    if genre is not None:
        return Intent("genre", rest=tuple(content), genre=genre)
    return Intent("mood", rest=tuple(content))


def _genre_of(content: list[str], genres: Mapping[str, tuple[str, ...]]) -> str | None:
    """The genre whose words cover most of the content words, if it covers most of them."""
    wanted = set(content)
    best, share = None, 0.0
    for g, gw in genres.items():
        if gw and set(gw) <= wanted:
            s = len(gw) / len(wanted)
            if s > share:
                best, share = g, s
    return best if share >= NAME_COVERAGE else None


QUERY_PROBLEMS = {
    "empty": "is empty",
    "no_words": "has no words (only punctuation or symbols)",
    "unsupported_language": "is not in a language the query model reads (English, Latin script)",
}
"""Why a query cannot be answered -> the message the API gives (422)."""


def query_problem(text: str) -> str | None:
    """A :data:`QUERY_PROBLEMS` key when a query cannot be understood, else None.

    The sentence model reads English: a query whose letters are mostly of another
    script ("ночная поездка", "夜のドライブ") would land on noise, so it is refused
    rather than answered with confident nonsense.
    """
    if not text.strip():
        return "empty"
    letters = [c for c in text if c.isalpha()]
    if not letters and not any(c.isdigit() for c in text):
        return "no_words"
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    if letters and latin < len(letters) / 2:
        return "unsupported_language"
    return None
