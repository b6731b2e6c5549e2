"""The hybrid: fitted models blended on per-user z-scores, weights tuned on validation.

Used by ``encore train hybrid`` (the published artifact) and shaped so that
``encore eval`` can use it too (:func:`tune_hybrid` has the signature of the
one in :mod:`batch.evaluate`).

* :func:`tune_weights`: one model (the anchor, ALS) keeps weight 1, every other
  model gets each weight of a small grid; the combination with the best
  validation NDCG@10 wins. Each model alone is measured on the same users.
* :func:`top_lists`: every user's top ``k`` items of a fitted
  :class:`batch.cf.Blend`, the user's own items left out, padded with -1.

Users are scored in chunks of :data:`CHUNK`, so no users x items score matrix
for all users is ever held at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from batch.cf import Recommender, zscore_rows
from batch.data import binary
from batch.metrics import rank_metrics, top_k
from batch.split import Split

CHUNK = 512
"""Users scored together."""
STEPS = (0.0, 0.15, 0.3, 0.5, 0.8)
"""Weights tried for each non-anchor model."""
QUICK_STEPS = (0.0, 0.3)


@dataclass
class Tuning:
    """Chosen weights (every model, zeros included) and validation NDCG@10."""

    weights: dict[str, float]
    ndcg: float
    alone: dict[str, float]


def weight_grid(
    names: Sequence[str], anchor: str, steps: Sequence[float]
) -> list[dict[str, float]]:
    """Every combination of ``steps`` for the models other than ``anchor`` (weight 1)."""
    others = [n for n in names if n != anchor]
    return [
        {anchor: 1.0, **dict(zip(others, combo, strict=True))}
        for combo in itertools.product(steps, repeat=len(others))
    ]


def validation_ndcg(
    models: Mapping[str, Recommender],
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    weightings: Sequence[Mapping[str, float]],
    chunk: int = CHUNK,
) -> list[float]:
    """NDCG@10 on ``valid`` of each blend (train items masked), mean over users with targets."""
    target = valid.tocsr()
    seen = binary(train)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    used = [n for n in models if any(w.get(n) for w in weightings)]
    sums = np.zeros(len(weightings))
    for s in range(0, users.size, chunk):
        u = users[s : s + chunk]
        mask = seen[u]
        r, c = mask.nonzero()
        z = {n: zscore_rows(models[n].scores(u), mask) for n in used}
        t = target[u]
        wanted = t.toarray() > 0
        n_pos = np.diff(t.indptr)
        for j, weights in enumerate(weightings):
            total = np.zeros((u.size, seen.shape[1]), dtype=np.float32)
            for n, w in weights.items():
                if w:
                    total += np.float32(w) * z[n]
            total[r, c] = -np.inf
            hits = np.take_along_axis(wanted, top_k(total, None, 10), axis=1)
            sums[j] += float(rank_metrics(hits, n_pos, (10,))["ndcg@10"].sum())
    return [float(x) for x in sums / max(users.size, 1)]


def tune_weights(
    models: Mapping[str, Recommender],
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    anchor: str,
    steps: Sequence[float] = STEPS,
) -> Tuning:
    """Grid-search the blend weights (``anchor`` fixed at 1) by validation NDCG@10."""
    if anchor not in models:
        raise ValueError(f"the anchor model {anchor!r} is not among {sorted(models)}")
    grid = weight_grid(list(models), anchor, steps)
    singles = [{n: 1.0} for n in models if n != anchor]
    scores = validation_ndcg(models, train, valid, [*grid, *singles])
    best = int(np.argmax(scores[: len(grid)]))  # first best: ties keep the smaller weights
    alone = {anchor: scores[grid.index({anchor: 1.0, **{n: 0.0 for n in models if n != anchor}})]}
    alone.update({n: scores[len(grid) + i] for i, n in enumerate(x for x in models if x != anchor)})
    return Tuning(grid[best], scores[best], alone)


def tune_hybrid(
    models: dict[str, Recommender], split: Split, quick: bool, log: Callable[[str], None]
) -> tuple[dict[str, float], float]:
    """Blend weights (``ALS`` fixed at 1) by validation NDCG@10; the non-zero ones."""
    tuning = tune_weights(models, split.train, split.valid, "ALS", QUICK_STEPS if quick else STEPS)
    log(f"hybrid weights {tuning.weights}: valid ndcg@10 {tuning.ndcg:.4f}")
    return {n: w for n, w in tuning.weights.items() if w}, tuning.ndcg


def top_lists(
    blend: Recommender, seen: sp.csr_matrix, k: int, chunk: int = CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``k`` best items (int32, -1 padded) and scores (float32, 0 padded).

    ``seen`` (users x items) is left out of every list; a user with fewer than
    ``k`` other items gets a shorter list, padded at the end.
    """
    seen = binary(seen)
    n_users, n_items = seen.shape
    items = np.full((n_users, k), -1, dtype=np.int32)
    scores = np.zeros((n_users, k), dtype=np.float32)
    width = min(k, n_items)
    if width == 0:
        return items, scores
    for s in range(0, n_users, chunk):
        u = np.arange(s, min(s + chunk, n_users))
        total = np.array(blend.scores(u), dtype=np.float32)
        top = top_k(total, seen[u], width)
        picked = np.take_along_axis(total, top, axis=1)
        ok = np.isfinite(picked)
        items[u, :width] = np.where(ok, top, -1)
        scores[u, :width] = np.where(ok, picked, 0.0)
    return items, scores
