"""``encore recommend-batch``: top-k lists for many users from a published model, as JSONL.

One line per requested user: ``{"user_id", "items", "scores", "model",
"version", "fallback"}``. Kinds:

* ``als``, ``lightgcn``: known users are ranked by their factors against every
  item, skipping the items they had in training.
* ``hybrid``: the precomputed lists (training items already left out), cut
  to ``k``; ``k`` may not exceed the lists' length.

An exclude file (:func:`read_exclude`, e.g. train plus validation pairs) adds
``(user, item)`` pairs never to recommend, on top of the training items. A
hybrid list can run short of ``k`` once they are removed; the stats count
those users. Users the model does not know get the most popular items
(``"fallback": "popularity"``; for ``hybrid``, popularity of the published
``als`` artifact, or an empty list with ``"fallback": "none"`` when there is
none), minus their excluded items. The output is plain data, so anyone can
score it with their own evaluation code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from batch.metrics import top_k
from models.io.artifacts import Artifact, ArtifactError, ArtifactStore
from models.serving import ModelError, make_toplists

KINDS = ("als", "lightgcn", "hybrid")
CHUNK = 512
Lists = dict[str, tuple[np.ndarray, np.ndarray]]


class ExcludeFileError(ValueError):
    """An exclude file line that is not ``user_id<TAB>item_id``."""


def read_users(path: Path) -> list[str]:
    """User ids, one per line (blank lines and ``#`` comments skipped)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_exclude(path: Path) -> dict[str, set[str]]:
    """User id -> item ids never to recommend, from ``user_id<TAB>item_id`` lines.

    A comma separates the two when a line has no tab (CSV). Blank lines, ``#``
    comments and a ``user_id``/``item_id`` header are skipped; any other line
    without exactly two non-empty fields raises :class:`ExcludeFileError`
    naming the file and line number.
    """
    pairs: dict[str, set[str]] = {}
    with path.open(encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = [x.strip() for x in line.split("\t" if "\t" in line else ",")]
            if len(fields) != 2 or not all(fields):
                raise ExcludeFileError(
                    f"{path}:{number}: expected user_id<TAB>item_id, got {line[:80]!r}"
                )
            if fields == ["user_id", "item_id"]:
                continue
            pairs.setdefault(fields[0], set()).add(fields[1])
    return pairs


def recommend(
    store: ArtifactStore,
    users: Iterable[str],
    k: int,
    out: Path,
    kind: str = "als",
    exclude: Mapping[str, set[str]] | None = None,
) -> dict[str, int | str]:
    """Write the JSONL file; returns counts of known, fallback and short users."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    exclude = exclude or {}
    art = store.load(kind)
    items: list[str] = art.json("item_ids.json")
    row = {u: i for i, u in enumerate(art.json("user_ids.json"))}
    col = {t: j for j, t in enumerate(items)}
    wanted = list(users)
    known = [u for u in wanted if u in row]
    stats: dict[str, int | str] = {"version": art.version}
    if kind == "hybrid":
        lists, short = _hybrid_lists(art, known, row, col, exclude, k)
        stats["short_after_exclusion"] = short
        pop, pop_items = _popularity(store)
    else:
        lists = _factor_lists(art, known, row, col, exclude, k)
        pop, pop_items = art.array("popularity.npy"), items
    pop_order = np.argsort(-pop, kind="stable")
    out.parent.mkdir(parents=True, exist_ok=True)
    fallback = "popularity" if pop.size else "none"
    with out.open("w") as f:
        for u in wanted:
            if u in lists:
                top, sc = lists[u]
                names, values = [items[i] for i in top], [float(x) for x in sc]
            else:
                names, values = _popular(pop_order, pop, pop_items, exclude.get(u, set()), k)
            doc = {
                "user_id": u,
                "items": names,
                "scores": [round(x, 6) for x in values],
                "model": kind,
                "version": art.version,
                "fallback": None if u in lists else fallback,
            }
            f.write(json.dumps(doc) + "\n")
    applied = sum(len(v) for u, v in exclude.items() if u in row)
    stats.update(users=len(wanted), known=len(lists), fallback=len(wanted) - len(lists))
    stats["exclude_pairs"] = sum(len(v) for v in exclude.values())
    stats["exclude_pairs_of_known_users"] = applied
    return stats


def _factor_lists(
    art: Artifact,
    known: list[str],
    row: Mapping[str, int],
    col: Mapping[str, int],
    exclude: Mapping[str, set[str]],
    k: int,
) -> Lists:
    uf, itf = art.array("user_factors.npy"), art.array("item_factors.npy")
    indices = art.array("seen_indices.npy")
    seen = sp.csr_matrix(
        (np.ones(indices.size, dtype=np.float32), indices, art.array("seen_indptr.npy")),
        shape=(uf.shape[0], itf.shape[0]),
    )
    lists: Lists = {}
    for s in range(0, len(known), CHUNK):
        names = known[s : s + CHUNK]
        chunk = np.array([row[u] for u in names])
        mask = seen[chunk] + _pairs(names, col, exclude, itf.shape[0])
        scores = uf[chunk] @ itf.T
        top = top_k(scores, mask.tocsr(), k)
        for n, u in enumerate(names):
            picked = np.take(scores[n], top[n])
            ok = np.isfinite(picked)  # fewer allowed items than k: no padding with excluded ones
            lists[u] = (top[n][ok], picked[ok])
    return lists


def _pairs(
    names: list[str], col: Mapping[str, int], exclude: Mapping[str, set[str]], n_items: int
) -> sp.csr_matrix:
    """The excluded pairs of ``names`` (rows in that order) over the artifact's items."""
    rows, cols = [], []
    for n, u in enumerate(names):
        for t in exclude.get(u, ()):
            if t in col:
                rows.append(n)
                cols.append(col[t])
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(names), n_items))


def _hybrid_lists(
    art: Artifact,
    known: list[str],
    row: Mapping[str, int],
    col: Mapping[str, int],
    exclude: Mapping[str, set[str]],
    k: int,
) -> tuple[Lists, int]:
    try:  # the same checks as the API's loader
        tops = make_toplists(
            art.version,
            list(col),
            list(row),
            art.array("top_items.npy"),
            art.array("top_scores.npy"),
        )
    except ModelError as exc:
        raise ArtifactError(str(exc)) from exc
    top_items, top_scores = tops.items, tops.scores
    width = top_items.shape[1]
    if k > width:
        raise ValueError(f"k={k} is more than the {width} items per user the hybrid artifact holds")
    lists: Lists = {}
    short = 0
    for u in known:
        r = row[u]
        top, sc = top_items[r], top_scores[r]
        ok = top >= 0
        banned = {col[t] for t in exclude.get(u, ()) if t in col}
        if banned:
            ok &= ~np.isin(top, list(banned))
        keep = np.flatnonzero(ok)[:k]
        if keep.size < k and np.count_nonzero(top >= 0) >= k:
            short += 1
        lists[u] = (top[keep], sc[keep])
    return lists, short


def _popularity(store: ArtifactStore) -> tuple[np.ndarray, list[str]]:
    """Popularity and item ids of the published ``als`` artifact (empty when there is none)."""
    try:
        als = store.load("als")
        return als.array("popularity.npy"), als.json("item_ids.json")
    except ArtifactError:
        return np.zeros(0, dtype=np.float32), []


def _popular(
    order: np.ndarray, pop: np.ndarray, items: list[str], banned: set[str], k: int
) -> tuple[list[str], list[float]]:
    names: list[str] = []
    scores: list[float] = []
    for i in order:
        if len(names) == k:
            break
        if items[i] not in banned:
            names.append(items[i])
            scores.append(float(pop[i]))
    return names, scores
