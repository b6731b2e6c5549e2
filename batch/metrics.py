"""Full-ranking top-k metrics (RecBole's definitions) and beyond-accuracy measures.

Per user, with ``hits`` the 0/1 vector of the ranked list and ``P`` the number
of held-out items:

* Recall@k = hits in the top k / P
* NDCG@k = DCG@k / IDCG@k with binary gains, DCG = sum hits[r] / log2(r + 2),
  IDCG over min(P, k) ideal hits
* HR@k = 1 if any hit in the top k
* MRR@k = 1 / rank of the first hit within k, else 0

averaged over users with at least one held-out item. Every item is ranked (no
sampled negatives); the items a user already has (``exclude``) are masked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

KS = (10, 20)
ScoreFn = Callable[[np.ndarray], np.ndarray]


def top_k(scores: np.ndarray, exclude: sp.csr_matrix | None, k: int) -> np.ndarray:
    """Row-wise indices of the ``k`` best scores, excluded items masked (in place)."""
    if exclude is not None:
        r, c = exclude.nonzero()
        scores[r, c] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def rank_metrics(
    hits: np.ndarray, n_pos: np.ndarray, ks: Sequence[int] = KS
) -> dict[str, np.ndarray]:
    """Per-user metric arrays from (users, K) hits in rank order and held-out counts."""
    h = hits.astype(np.float64)
    width = h.shape[1]
    discount = 1.0 / np.log2(np.arange(2, width + 2))
    dcg = np.cumsum(h * discount, axis=1)
    ideal = np.cumsum(discount)
    cum = np.cumsum(h, axis=1)
    first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
    n = np.asarray(n_pos)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"recall@{k}"] = cum[:, k - 1] / n
        out[f"ndcg@{k}"] = dcg[:, k - 1] / ideal[np.minimum(n, k) - 1]
        out[f"hit@{k}"] = (cum[:, k - 1] > 0).astype(np.float64)
        out[f"mrr@{k}"] = np.where((first > 0) & (first <= k), 1.0 / np.maximum(first, 1), 0.0)
    return out


@dataclass
class Ranking:
    """Mean metrics over evaluated users, and the top lists that produced them."""

    metrics: dict[str, float]
    users: np.ndarray
    lists: np.ndarray


def evaluate(
    score_fn: ScoreFn,
    exclude: sp.csr_matrix,
    target: sp.csr_matrix,
    ks: Sequence[int] = KS,
    batch: int = 512,
) -> Ranking:
    """Rank every item for each user with targets; mask ``exclude``; score against ``target``."""
    target = target.tocsr()
    exclude = exclude.tocsr()
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    width = max(ks)
    per_user: list[dict[str, np.ndarray]] = []
    lists: list[np.ndarray] = []
    for s in range(0, users.size, batch):
        u = users[s : s + batch]
        scores = np.array(score_fn(u), dtype=np.float32, copy=True)
        top = top_k(scores, exclude[u], width)
        t = target[u]
        hits = np.asarray(t[np.arange(u.size)[:, None], top].todense()) > 0
        per_user.append(rank_metrics(hits, np.diff(t.indptr), ks))
        lists.append(top)
    if not per_user:
        return Ranking({}, users, np.zeros((0, width), dtype=np.int64))
    means = {m: float(np.mean(np.concatenate([p[m] for p in per_user]))) for m in per_user[0]}
    means["users"] = float(users.size)
    return Ranking(means, users, np.vstack(lists))


def beyond_accuracy(
    lists: np.ndarray,
    train: sp.csr_matrix,
    item_artists: Sequence[str | None] | None = None,
    k: int = 10,
) -> dict[str, float]:
    """Coverage, intra-list diversity, novelty and (with artists) artist diversity of top-k.

    * coverage: distinct recommended items / catalog size
    * ILD: 1 - mean pairwise cosine of the items' binary listener vectors (train)
    * novelty: mean -log2(share of users with the item in train), counts floored at 1
    * artist diversity: distinct artists in a list / list length, averaged
    """
    top = lists[:, :k]
    n_users, n_items = train.shape
    if top.size == 0:
        return {}
    listeners = (train.T.tocsr() > 0).astype(np.float64)
    norms = np.sqrt(np.asarray(listeners.sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    iu, ju = np.triu_indices(top.shape[1], 1)
    ild = []
    for row in top:
        v = listeners[row]
        sim = (v @ v.T).toarray() / np.outer(norms[row], norms[row])
        ild.append(1.0 - float(sim[iu, ju].mean()) if iu.size else 0.0)
    pop = np.maximum(np.asarray((train > 0).sum(axis=0)).ravel(), 1) / max(n_users, 1)
    out = {
        f"coverage@{k}": float(np.unique(top).size / n_items),
        f"ild@{k}": float(np.mean(ild)),
        f"novelty@{k}": float(np.mean(-np.log2(pop[top]))),
    }
    if item_artists is not None and any(a is not None for a in item_artists):
        shares = [len({item_artists[i] or f"?{i}" for i in row}) / max(len(row), 1) for row in top]
        out[f"artist_diversity@{k}"] = float(np.mean(shares))
    return out


def list_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of items two sets of top-k lists (same users, same order) have in common."""
    if a.size == 0:
        return 0.0
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b, strict=True)]))
