"""``encore eval --queries``: precision of free-text queries against Last.fm listeners' tags.

A query file is JSON lines, one object per line: ``{"query": "...", "tags":
["...", ...]}``, the tags being the Last.fm tags that count as relevant to the
query (blank lines and lines starting with ``#`` are skipped). An artist is
relevant to a query when at least :data:`MIN_TAGGERS` distinct listeners tagged
it with any of the query's tags (``user_taggedartists.dat``).

The ranking measured is the API's: the ``content`` artifact is trained on the
dataset by :func:`batch.content.train_content`, read back by the loader the API
uses (:func:`models.io.queryspace.load_query_space`), each query ranked by
:func:`models.query.rank` and put through :func:`models.rerank.rerank` with
the API's defaults and no user filters. The baseline is the old path's text
signal alone: the query's embedding against every artist's text vector, by
cosine.

The queries are split by line: odd lines tune, even lines are held out. Only
global parameters are tuned (module constants of :mod:`models.tagspace` and
:data:`models.query.WEIGHTS`), never per query; the report gives both halves.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.io.artifacts import Artifact
from models.io.queryspace import load_query_space
from models.pool import facts_of, make_items
from models.query import candidates, detect_mood, rank, rerank_weights
from models.rerank import Context, Filters, rerank

MIN_TAGGERS = 2
"""Distinct listeners who must have tagged an artist with a query's tags for it to count."""
K = 10
MAX_QUERY_CHARS = 500
MMR_LAMBDA = 0.7
ARTIST_GAP = 3
"""The API's defaults (``ENCORE_API_MMR_LAMBDA``, ``ENCORE_API_ARTIST_GAP``)."""
_TOKEN = re.compile(r"[a-z0-9]+")


class QueryFileError(ValueError):
    """A query file is missing or a line of it is malformed (the message names the line)."""


@dataclass(frozen=True)
class LabelledQuery:
    """One line of a query file."""

    line: int
    query: str
    tags: tuple[str, ...]


def simple_tokens(text: str) -> set[str]:
    """Lower-case runs of letters and digits (how "shares no word" is checked)."""
    return set(_TOKEN.findall(text.lower()))


def read_queries(path: Path) -> list[LabelledQuery]:
    """Parse and validate a query file; any problem raises :class:`QueryFileError`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise QueryFileError(f"{path}: no such query file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryFileError(f"{path}: cannot read: {exc}") from None
    out: list[LabelledQuery] = []
    for n, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QueryFileError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise QueryFileError(f"{where}: expected an object with query and tags")
        extra = set(obj) - {"query", "tags"}
        if extra:
            raise QueryFileError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        query, tags = obj.get("query"), obj.get("tags")
        if not isinstance(query, str) or not query.strip():
            raise QueryFileError(f"{where}: query must be a non-empty string")
        if len(query) > MAX_QUERY_CHARS:
            raise QueryFileError(f"{where}: query longer than {MAX_QUERY_CHARS} characters")
        if not simple_tokens(query):
            raise QueryFileError(f"{where}: query has no words")
        if (
            not isinstance(tags, list)
            or not tags
            or not all(isinstance(t, str) and t.strip() for t in tags)
        ):
            raise QueryFileError(f"{where}: tags must be a non-empty list of non-empty strings")
        out.append(LabelledQuery(n, query.strip(), tuple(t.strip().lower() for t in tags)))
    if not out:
        raise QueryFileError(f"{path}: no queries")
    return out


def lastfm_tag_names(folder: Path) -> dict[str, str]:
    """Last.fm tag id -> lower-case tag name (``tags.dat``)."""
    with (folder / "tags.dat").open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return {r[0]: r[1].strip().lower() for r in reader if len(r) >= 2}


def taggers(folder: Path) -> dict[str, dict[str, set[str]]]:
    """Tag name -> item id (``lfm:<artist>``) -> the users who gave it that tag."""
    names = lastfm_tag_names(folder)
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    path = folder / "user_taggedartists.dat"
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for r in reader:
            if len(r) >= 3 and r[2] in names:
                out[names[r[2]]][f"lfm:{r[1]}"].add(r[0])
    return out


def relevant(
    tags: tuple[str, ...], by_tag: dict[str, dict[str, set[str]]], min_taggers: int
) -> set[str]:
    """Items tagged with any of ``tags`` by at least ``min_taggers`` distinct users."""
    users: dict[str, set[str]] = defaultdict(set)
    for t in tags:
        for item, who in by_tag.get(t, {}).items():
            users[item] |= who
    return {i for i, who in users.items() if len(who) >= min_taggers}


def precision_ndcg(ranked: list[str], rel: set[str], k: int = K) -> tuple[float, float]:
    """P@k and binary NDCG@k of one ranked list."""
    hits = [1.0 if r in rel else 0.0 for r in ranked[:k]]
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(rel))))
    return sum(hits) / k, (dcg / ideal if ideal else 0.0)


@dataclass
class QueryArrays:
    """The content artifact's arrays the query ranker reads, as the API holds them."""

    ids: list[str]
    items: list[dict[str, Any]]
    text: np.ndarray
    mood: np.ndarray
    audio: np.ndarray | None
    lexicon: dict[str, tuple[float, float]]
    text_to_mood: np.ndarray | None
    text_to_mood_bias: np.ndarray | None
    space: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9), np.float32)


def arrays(art: Artifact, exact_max: int | None = None) -> QueryArrays:
    """Read what the API's ``Content`` holds for queries from a ``content`` artifact
    (``exact_max``: the catalog size above which ranking goes through candidate indices,
    default :data:`models.queryindex.EXACT_MAX`)."""
    files = art.manifest["files"]

    def opt(name: str) -> np.ndarray | None:
        return np.asarray(art.array(name), dtype=np.float32) if name in files else None

    space = load_query_space(art, exact_max=exact_max)
    if space is None:
        raise ValueError(f"content/{art.version} has no tag space (retrain content)")
    return QueryArrays(
        ids=art.json("item_ids.json"),
        items=art.json("items.json"),
        text=_unit(art.array("text.npy")),
        mood=np.asarray(art.array("mood.npy"), dtype=np.float32),
        audio=_unit(art.array("audio.npy")) if "audio.npy" in files else None,
        lexicon={k: (float(v[0]), float(v[1])) for k, v in art.json("lexicon.json").items()},
        text_to_mood=opt("text_to_mood.npy"),
        text_to_mood_bias=opt("text_to_mood_bias.npy"),
        space=space,
    )


def api_ranking(q: str, vec: np.ndarray, a: QueryArrays, k: int = K) -> tuple[list[str], Any]:
    """The item ids the API answers ``q`` with (no user, no filters), and the ranking."""
    mood = detect_mood(q, vec, a.lexicon, a.text_to_mood, a.text_to_mood_bias)
    target = (mood.valence, mood.arousal) if mood.source != "none" else None
    ranking = rank(
        q,
        vec,
        a.space,
        text=a.text,
        mood=a.mood,
        audio=a.audio,
        target=target,
        k=200,
        lexicon=frozenset(a.lexicon),
    )
    items = a.extra.get("items")
    if items is None:  # the facts the API's pool joins, built once per arrays
        items = a.extra["items"] = make_items(a.ids, facts_of(a.items))
    pool = candidates(ranking, items)
    ranked = rerank(
        pool,
        rerank_weights(ranking),
        n=k,
        filters=Filters(),
        ctx=Context(),
        lam=MMR_LAMBDA,
        artist_gap=ARTIST_GAP,
    )
    return [r.candidate.track_id for r in ranked], ranking


def baseline_ranking(vec: np.ndarray, a: QueryArrays, k: int = K) -> list[str]:
    """The sentence-model-only baseline: cosine of the query and each item's text vector."""
    sims = a.text @ vec
    top = np.argsort(-sims, kind="stable")[:k]
    return [a.ids[i] for i in top]


def evaluate(
    queries: list[LabelledQuery],
    a: QueryArrays,
    by_tag: dict[str, dict[str, set[str]]],
    encode: Callable[[list[str]], np.ndarray],
    min_taggers: int = MIN_TAGGERS,
) -> list[dict[str, Any]]:
    """Per query: relevant count, intent, expanded tags, P@10 and NDCG@10 of both methods."""
    vectors = encode([q.query for q in queries])
    rows = []
    for q, vec in zip(queries, vectors, strict=True):
        rel = relevant(q.tags, by_tag, min_taggers)
        ours, ranking = api_ranking(q.query, vec, a)
        base = baseline_ranking(vec, a)
        p, n = precision_ndcg(ours, rel)
        bp, bn = precision_ndcg(base, rel)
        rows.append(
            {
                "line": q.line,
                "split": "tune" if q.line % 2 else "held-out",
                "query": q.query,
                "relevant": len(rel),
                "intent": ranking.intent.kind,
                "expanded_tags": [t for t, _ in ranking.tags[:5]],
                "p@10": p,
                "ndcg@10": n,
                "baseline_p@10": bp,
                "baseline_ndcg@10": bn,
                "top": ours[:3],
            }
        )
    return rows
