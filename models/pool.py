"""Candidate pools as columns: integer item rows, signal columns, catalog facts as codes.

Every track a served model knows gets one row in :class:`Items`, built once per
set of artifact versions: the content artifact's rows first (same order), then
tracks only the collaborative models or the hybrid's lists know. Its columns are
what ranking joins to a candidate (artist, genre and year as integer codes,
whether it is music, where its diversity vector lives), so a request never
looks a track up in a dictionary of metadata.

A :class:`Pool` is one request's candidates: item rows (tracks no artifact knows
yet, from the catalog topic, get rows past the end of :class:`Items`), one float
column per signal (NaN where a source did not give it), the sources as bits, the
seed a content candidate came from, and the facts joined by indexing the item
columns. Sources add their results as arrays (:class:`PoolBuilder`); merging is
one ``np.unique``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.events import LinkStatus

NO_CODE = -1
LINK_CODES = tuple(s.value for s in LinkStatus)
"""Link status per code (index 0: "unknown", a track never checked)."""
LINK_CODE = {s: i for i, s in enumerate(LINK_CODES)}
DEAD = LINK_CODE["dead"]
SPACES = ("collab", "text")
"""Where diversity vectors come from, by space code: a track's unit collaborative
factors when the ALS model knows it, else its text vector (never compared across
spaces)."""


class Vocab:
    """Strings as dense integer codes (first seen, first code)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values: list[str] = []
        self.code: dict[str, int] = {}
        for v in values:
            self.add(v)

    def add(self, value: str) -> int:
        """The code of ``value``, given a new one if it has none."""
        c = self.code.get(value)
        if c is None:
            c = self.code[value] = len(self.values)
            self.values.append(value)
        return c


@dataclass(frozen=True)
class Facts:
    """Per-track facts as columns over a list of tracks (codes index the vocabularies)."""

    artist: np.ndarray  # int32 artist code (NO_CODE: unknown)
    genre: np.ndarray  # int32 genre code (NO_CODE: none)
    year: np.ndarray  # float64 (NaN: none)
    music: np.ndarray  # bool: False when the catalog flags the track as not music
    artists: Vocab
    genres: Vocab


def artist_key(info: Mapping[str, Any]) -> str | None:
    """One artist identity per track: its id, else its lower-case name."""
    if info.get("artist_id"):
        return str(info["artist_id"])
    return "name:" + str(info["artist"]).lower() if info.get("artist") else None


def _year(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def facts_of(
    infos: Sequence[Mapping[str, Any]], artists: Vocab | None = None, genres: Vocab | None = None
) -> Facts:
    """Facts of catalog metadata rows (artist identity by :func:`artist_key`)."""
    artists = artists if artists is not None else Vocab()
    genres = genres if genres is not None else Vocab()
    n = len(infos)
    artist = np.full(n, NO_CODE, np.int32)
    genre = np.full(n, NO_CODE, np.int32)
    year = np.full(n, np.nan)
    music = np.ones(n, bool)
    for i, it in enumerate(infos):
        a = artist_key(it)
        if a is not None:
            artist[i] = artists.add(a)
        g = it.get("genre")
        if isinstance(g, str) and g:
            genre[i] = genres.add(g)
        if it.get("year") is not None:
            year[i] = _year(it.get("year"))
        if it.get("is_music") is False:
            music[i] = False
    return Facts(artist, genre, year, music, artists, genres)


@dataclass(frozen=True)
class Items:
    """One row per track the served models know, with its facts as columns."""

    ids: list[str]
    row: dict[str, int]
    facts: Facts
    genre_lower: np.ndarray  # per genre code, its lower-case form's code in ``lower``,
    # then NO_CODE (so that indexing it with NO_CODE gives NO_CODE)
    lower: Vocab
    known: int  # rows below this have metadata in an artifact (the content model)
    space: np.ndarray  # int8 diversity space per row (index into ``vectors``; -1: none)
    vrow: np.ndarray  # int64 row in that space's matrix
    vectors: tuple[np.ndarray, ...]  # per space: unit vectors (collab items, content text)
    of: Mapping[str, np.ndarray] = field(default_factory=dict)  # source rows -> item rows

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        """Item rows of ``ids`` (-1 for a track no artifact knows)."""
        get = self.row.get
        return np.fromiter((get(t, -1) for t in ids), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)


def make_items(
    ids: Sequence[str],
    facts: Facts,
    *,
    known: int | None = None,
    vectors: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    of: Mapping[str, np.ndarray] | None = None,
    row: dict[str, int] | None = None,
) -> Items:
    """Items over ``ids`` with their facts; ``vectors`` lists, per diversity space in
    order of preference, (item rows that have a vector there, the matching unit
    vectors): a row takes the first space that has it. ``row``: the id -> row map of
    ``ids`` when the caller has built it already."""
    n = len(ids)
    space = np.full(n, -1, np.int8)
    vrow = np.zeros(n, np.int64)
    mats = []
    for s, (rows, mat) in enumerate(vectors):
        rows = np.asarray(rows, np.int64)
        take = space[rows] < 0
        space[rows[take]] = s
        vrow[rows[take]] = np.flatnonzero(take)
        mats.append(mat)
    lower = Vocab()
    lowered = [lower.add(g.lower()) for g in facts.genres.values]
    genre_lower = np.array([*lowered, NO_CODE], np.int32)
    return Items(
        ids=list(ids),
        row=row if row is not None else {t: i for i, t in enumerate(ids)},
        facts=facts,
        genre_lower=genre_lower,
        lower=lower,
        known=n if known is None else known,
        space=space,
        vrow=vrow,
        vectors=tuple(mats),
        of=dict(of or {}),
    )


class Extension:
    """A vocabulary's codes plus codes of one request's own values, past the end of the
    vocabulary (which is shared and never copied or changed)."""

    def __init__(self, base: Vocab) -> None:
        self.base = base
        self.own: list[str] = []
        self.own_code: dict[str, int] = {}

    def code_of(self, value: str) -> int | None:
        c = self.base.code.get(value)
        return c if c is not None else self.own_code.get(value)

    def add(self, value: str) -> int:
        c = self.code_of(value)
        if c is None:
            c = self.own_code[value] = len(self.base.values) + len(self.own)
            self.own.append(value)
        return c

    def value(self, code: int) -> str:
        n = len(self.base.values)
        return self.base.values[code] if code < n else self.own[code - n]


@dataclass
class Pool:
    """One request's candidates as columns (see the module docstring).

    The fact columns (``artist``, ``genre``, ``year``, ``music``, ``link``) come from the
    item columns when the pool is built, and for tracks only the catalog topic
    describes from :meth:`join`; artist codes are those of :attr:`artists`, genre codes those of
    :attr:`genres` (lower-case names)."""

    items: Items
    rows: np.ndarray  # int64 item rows; >= len(items): ``extra[row - len(items)]``
    extra: list[str]
    signals: dict[str, np.ndarray]  # float64 per candidate, NaN: not given
    sources: list[str]
    bits: np.ndarray  # uint32, bit i: ``sources[i]`` gave the candidate
    seeds: list[str]
    seed: np.ndarray  # int32 index into ``seeds`` (-1: none)
    artist: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    genre: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    year: np.ndarray = field(default_factory=lambda: np.empty(0))
    music: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    link: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    artists: Extension = field(default_factory=lambda: Extension(Vocab()))
    genres: Extension = field(default_factory=lambda: Extension(Vocab()))
    genre_names: dict[int, str] = field(default_factory=dict)  # catalog-only candidates

    def __len__(self) -> int:
        return len(self.rows)

    def track_id(self, i: int) -> str:
        """The track at pool position ``i``."""
        r = int(self.rows[i])
        n = len(self.items)
        return self.items.ids[r] if r < n else self.extra[r - n]

    def track_ids(self, positions: Iterable[int]) -> list[str]:
        return [self.track_id(int(i)) for i in positions]

    def mask(self, ids: Iterable[str]) -> np.ndarray:
        """Whether each candidate is one of ``ids``."""
        ids = list(ids)
        want = self.items.rows(ids)
        if self.extra:
            at = {t: len(self.items) + j for j, t in enumerate(self.extra)}
            want = np.concatenate([want, np.array([at[t] for t in ids if t in at], np.int64)])
        return np.isin(self.rows, want[want >= 0])

    def source_names(self, i: int) -> list[str]:
        b = int(self.bits[i])
        return [s for k, s in enumerate(self.sources) if b >> k & 1]

    def describe(self) -> dict[str, int]:
        """Candidates per source (for metrics and the response)."""
        return {s: int(np.count_nonzero(self.bits >> k & 1)) for k, s in enumerate(self.sources)}

    def needs_catalog(self) -> list[str]:
        """Candidates whose metadata no artifact holds (their catalog rows are read)."""
        return self.track_ids(np.flatnonzero(self.rows >= self.items.known))

    def _item_facts(self) -> None:
        """Every candidate's facts from the item columns (tracks no artifact knows: none
        yet); every link status "unknown"."""
        items, n, rows = self.items, len(self.items), self.rows
        f = items.facts
        inside = rows < n
        at = np.where(inside, rows, 0)
        if n:
            self.artist = np.where(inside, f.artist[at], NO_CODE).astype(np.int32)
            self.genre = items.genre_lower[np.where(inside, f.genre[at], NO_CODE)]
            self.year = np.where(inside, f.year[at], np.nan)
            self.music = np.where(inside, f.music[at], True)
        else:
            self.artist = np.full(len(rows), NO_CODE, np.int32)
            self.genre = np.full(len(rows), NO_CODE)
            self.year = np.full(len(rows), np.nan)
            self.music = np.ones(len(rows), bool)
        self.genre = self.genre.astype(np.int32)
        self.link = np.zeros(len(rows), np.int8)
        self.artists, self.genres = Extension(f.artists), Extension(items.lower)

    def join(self, catalog: Mapping[str, Any]) -> None:
        """Facts of the candidates without artifact metadata, from the catalog topic's row
        where there is one (``catalog``: track id -> an object with a ``meta`` mapping);
        the other candidates' facts come from the item columns when the pool is built."""
        for i in np.flatnonzero(self.rows >= self.items.known).tolist() if catalog else ():
            row = catalog.get(self.track_id(i))
            if row is None:
                continue  # what the collaborative models know (an artist at most) stays
            info = row.meta
            a = artist_key(info)
            self.artist[i] = NO_CODE if a is None else self.artists.add(a)
            g = info.get("genre")
            if isinstance(g, str) and g:
                self.genre_names[i] = g
                self.genre[i] = self.genres.add(g.lower())
            else:
                self.genre[i] = NO_CODE
            self.year[i] = _year(info.get("year")) if info.get("year") is not None else np.nan
            self.music[i] = info.get("is_music") is not False

    def artist_of(self, i: int) -> str | None:
        c = int(self.artist[i])
        return self.artists.value(c) if c >= 0 else None

    def genre_of(self, i: int) -> str | None:
        """A candidate's genre as its metadata spells it."""
        if i in self.genre_names:
            return self.genre_names[i]
        r = int(self.rows[i])
        if r >= len(self.items) or self.genre[i] < 0:
            return None
        return self.items.facts.genres.values[int(self.items.facts.genre[r])]

    def year_of(self, i: int) -> int | None:
        y = float(self.year[i])
        return None if np.isnan(y) else int(y)

    def link_of(self, i: int) -> str:
        return LINK_CODES[int(self.link[i])]

    def set_link(self, i: int, status: str) -> None:
        self.link[i] = LINK_CODE.get(status, 0)


class PoolBuilder:
    """Collects candidate groups from sources and merges them into a :class:`Pool`.

    A track given by several sources keeps every signal (the largest value of each),
    every source and the first seed, in the order the groups were added; its position
    in the pool is where it first appeared (ties in score keep that order).
    """

    def __init__(self, items: Items) -> None:
        self.items = items
        self._rows: list[np.ndarray] = []
        self._groups: list[tuple[str, dict[str, np.ndarray], str | None]] = []
        self._extra: dict[str, int] = {}

    def add(
        self,
        source: str,
        rows: np.ndarray,
        signals: Mapping[str, np.ndarray],
        seed: str | None = None,
    ) -> None:
        """A group of item rows (``rows``) with their signal values."""
        rows = np.asarray(rows, np.int64)
        self._rows.append(rows)
        self._groups.append(
            (source, {s: np.asarray(v, np.float64) for s, v in signals.items()}, seed)
        )

    def add_ids(self, source: str, ids: Sequence[str], signals: Mapping[str, np.ndarray]) -> None:
        """A group given by track ids (tracks no artifact knows get extra rows)."""
        rows = self.items.rows(ids)
        for j in np.flatnonzero(rows < 0).tolist():
            t = ids[j]
            rows[j] = self._extra.setdefault(t, len(self.items) + len(self._extra))
        self.add(source, rows, signals)

    def build(self) -> Pool:
        items = self.items
        sources: list[str] = []
        for s, _sig, _seed in self._groups:
            if s not in sources:
                sources.append(s)
        every = np.concatenate(self._rows) if self._rows else np.empty(0, np.int64)
        uniq, first, inverse = np.unique(every, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(uniq), np.int64)
        rank[order] = np.arange(len(uniq))
        pos = rank[inverse.reshape(-1)]
        m = len(uniq)
        signals: dict[str, np.ndarray] = {}
        bits = np.zeros(m, np.uint32)
        seeds: list[str] = []
        seed = np.full(m, -1, np.int32)
        start = 0
        for rows, (source, sig, sd) in zip(self._rows, self._groups, strict=True):
            at = pos[start : start + len(rows)]
            start += len(rows)
            bits[at] |= np.uint32(1 << sources.index(source))
            for name, values in sig.items():
                col = signals.get(name)
                if col is None:
                    col = signals[name] = np.full(m, np.nan)
                np.fmax.at(col, at, values)
            if sd is not None and len(at):
                if sd not in seeds:
                    seeds.append(sd)
                free = at[seed[at] < 0]
                seed[free] = seeds.index(sd)
        extra = list(self._extra)
        pool = Pool(
            items=items,
            rows=uniq[order],
            extra=extra,
            signals=signals,
            sources=sources,
            bits=bits,
            seeds=seeds,
            seed=seed,
        )
        pool._item_facts()
        return pool
