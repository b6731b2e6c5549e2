"""Fill content vectors a track cannot have itself, and map text into the item space.

* :func:`impute_rows`: a track without audio gets the mean raw audio features of
  its genre (when at least two tracks of the genre have audio), else the
  similarity-weighted mean of those of its 5 nearest text neighbours with audio
  whose cosine is at least 0.5; else nothing (zero vector, mood from text).
  Raw features are imputed (not reduced vectors), so the audio vector and the
  audio mood cues of an imputed track come from one consistent guess.
* :func:`fit_text_map`: ridge from text embeddings to the L2-normalised item
  factors of the collaborative model, the strength picked on a held-out tenth
  by mean cosine, then refitted on all. It places a brand-new track (no
  listens yet) in the item space from its metadata alone.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from batch.mood import ridge

TEXT_NEIGHBOURS = 5
TEXT_MIN_SIMILARITY = 0.5
"""Text neighbours less similar than this say nothing about how a track sounds."""
ALPHAS = (0.1, 1.0, 10.0, 100.0)


def impute_rows(
    values: np.ndarray,
    known: np.ndarray,
    genres: list[str | None],
    text: np.ndarray,
) -> tuple[np.ndarray, list[str | None]]:
    """Rows of ``values`` for the tracks not ``known``; returns (filled values, method per row)."""
    out = values.copy()
    how: list[str | None] = [None] * len(genres)
    have = np.flatnonzero(known)
    if have.size == 0:
        return out, how
    by_genre: dict[str, list[int]] = defaultdict(list)
    for i in have:
        if genres[i]:
            by_genre[str(genres[i])].append(int(i))
    prototypes = {g: values[rows].mean(axis=0) for g, rows in by_genre.items() if len(rows) >= 2}
    for i in np.flatnonzero(~known):
        g = genres[i]
        if g and g in prototypes:
            out[i] = prototypes[g]
            how[i] = "genre"
            continue
        sims = text[have] @ text[i]
        k = min(TEXT_NEIGHBOURS, have.size)
        near = np.argpartition(-sims, k - 1)[:k]
        near = near[sims[near] >= TEXT_MIN_SIMILARITY]
        if near.size:
            w = sims[near]
            out[i] = (w[:, None] * values[have[near]]).sum(axis=0) / w.sum()
            how[i] = "text"
    return out, how


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9))


def fit_text_map(
    text: np.ndarray, factors: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Ridge text -> unit item factors: (weights (384, k), bias (k,), quality report)."""
    y = _unit(np.asarray(factors, dtype=np.float64))
    x = np.asarray(text, dtype=np.float64)
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    hold = order[: max(1, n // 10)] if n >= 20 else order[:0]
    fit = order[hold.size :]
    scores: dict[float, float] = {}
    if hold.size:
        for alpha in ALPHAS:
            w, b = ridge(x[fit], y[fit], alpha)
            pred = _unit(x[hold] @ w + b)
            scores[alpha] = float((pred * y[hold]).sum(axis=1).mean())
    best = max(scores, key=lambda a: scores[a]) if scores else ALPHAS[1]
    weights, bias = ridge(x, y, best)
    baseline = float((_unit(np.tile(y[fit].mean(axis=0), (hold.size, 1))) * y[hold]).sum(1).mean())
    report = {
        "alpha": best,
        "heldout_cosine": scores.get(best),
        "heldout_cosine_mean_vector": baseline if hold.size else None,
        "items": n,
        "by_alpha": {str(a): s for a, s in scores.items()},
    }
    return weights, bias, report
