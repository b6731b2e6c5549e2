"""Neighbourhood and linear recommenders, and the z-score blend that makes the hybrid.

Every model has the same two methods: ``fit(train)`` on a users x items matrix
of listening strength, and ``scores(users)`` returning dense float32 scores
over all items. :mod:`batch.als` and :mod:`batch.lightgcn` follow the same shape.

* :class:`Popularity`: distinct listeners per item, the floor every model must beat.
* :class:`ItemKNN`: cosine between items' listener vectors with shrinkage, the
  ``k`` nearest per item; score = the user's weighted items times similarity.
  It needs large neighbourhoods and shrinkage on Last.fm (k = 1000, shrink 200).
* :class:`EASE`: the closed-form item-item linear model (Steck 2019), solved in
  whichever of user or item space is smaller (Woodbury identity), so 17k items
  and 2k users costs a 2k x 2k inverse.
* :class:`TagKNN`: the content model: cosine of TF-IDF item x tag vectors.
* :class:`Blend`: a weighted sum of per-user z-scored model scores; the z-score
  makes scales comparable and ignores the user's own items (never ranked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from batch.data import binary, weighting

MAX_EASE_SIDE = 25_000
"""EASE inverts a square matrix of the smaller side; refuse beyond this."""


class Recommender(Protocol):
    """What evaluation and publishing need from a model."""

    def fit(self, train: sp.csr_matrix) -> Any: ...

    def scores(self, users: np.ndarray) -> np.ndarray: ...


class Popularity:
    """Items ranked by how many users have them."""

    def fit(self, train: sp.csr_matrix) -> Popularity:
        self.pop = np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel()
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.pop, (len(users), 1))


def cosine_similarity(x: sp.csr_matrix, shrink: float = 0.0) -> sp.csr_matrix:
    """Item-item cosine of the columns of ``x``, ``a.b / (|a||b| + shrink)``, no diagonal."""
    xc = x.tocsc().astype(np.float32)
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    sim = (xc.T @ xc).tocoo()
    sim.data = sim.data / (norms[sim.row] * norms[sim.col] + shrink + 1e-9)
    sim.data[sim.row == sim.col] = 0.0
    out = sim.tocsr()
    out.eliminate_zeros()
    return out


def keep_top_per_column(sim: sp.spmatrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of each column (column j = neighbours scoring item j)."""
    csc = sp.csc_matrix(sim)
    rows, cols, vals = [], [], []
    for j in range(csc.shape[1]):
        a, b = csc.indptr[j], csc.indptr[j + 1]
        if a == b:
            continue
        d, r = csc.data[a:b], csc.indices[a:b]
        if b - a > k:
            keep = np.argpartition(-d, k - 1)[:k]
            d, r = d[keep], r[keep]
        rows.append(r)
        vals.append(d)
        cols.append(np.full(r.size, j))
    if not rows:
        return sp.csr_matrix(sim.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=sim.shape,
        dtype=np.float32,
    )


class ItemKNN:
    """Item-based kNN with cosine similarity and shrinkage."""

    def __init__(self, k: int = 1000, shrink: float = 200.0, scheme: str = "log") -> None:
        self.k, self.shrink, self.scheme = k, shrink, scheme

    def fit(self, train: sp.csr_matrix) -> ItemKNN:
        self.x = weighting(train, self.scheme)
        self.w = keep_top_per_column(cosine_similarity(self.x, self.shrink), self.k)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.x[users] @ self.w).toarray(), dtype=np.float32)


class EASE:
    """EASE^R with L2 strength ``lam`` on ``w(count)`` input."""

    def __init__(self, lam: float = 2000.0, scheme: str = "log") -> None:
        self.lam, self.scheme = lam, scheme

    def fit(self, train: sp.csr_matrix) -> EASE:
        x = weighting(train, self.scheme).astype(np.float64).tocsr()
        n_users, n_items = x.shape
        if min(n_users, n_items) > MAX_EASE_SIDE:
            raise ValueError(f"EASE: {n_users} users x {n_items} items is too large")
        if n_items <= n_users:  # item space: P = (X'X + lam I)^-1, B = I - P / diag(P)
            gram = (x.T @ x).toarray() + self.lam * np.eye(n_items)
            p = np.linalg.inv(gram)
            b = -p / np.diag(p)
            np.fill_diagonal(b, 0.0)
            self.w: np.ndarray | None = b.astype(np.float32)
            self.x = x.astype(np.float32)
            self.s: np.ndarray | None = None
        else:  # user space (Woodbury): X P = K^-1 X with K = X X' + lam I
            k_inv = np.linalg.inv((x @ x.T).toarray() + self.lam * np.eye(n_users))
            xp = np.asarray((x.T @ k_inv).T)
            diag_p = (1.0 - np.asarray(x.multiply(xp).sum(axis=0)).ravel()) / self.lam
            self.s = (x.toarray() - xp / diag_p).astype(np.float32)
            self.w = None
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        if self.s is not None:
            return np.asarray(self.s[users])
        assert self.w is not None
        return np.asarray(self.x[users] @ self.w, dtype=np.float32)


def tag_matrix(tag_lists: list[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """Items x tags counts from one tag list per item (case-folded)."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, tags in enumerate(tag_lists):
        for t in tags:
            j = vocab.setdefault(t.strip().lower(), len(vocab))
            rows.append(i)
            cols.append(j)
    m = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(tag_lists), len(vocab))
    )
    m.sum_duplicates()
    return m, list(vocab)


class TagKNN:
    """Content kNN: cosine of TF-IDF (log tf) item x tag vectors, top ``k`` per item."""

    def __init__(
        self, item_tags: sp.csr_matrix, k: int = 50, shrink: float = 10.0, block: int = 2048
    ) -> None:
        self.item_tags, self.k, self.shrink, self.block = item_tags, k, shrink, block

    def fit(self, train: sp.csr_matrix) -> TagKNN:
        t = self.item_tags.tocsr().astype(np.float32)
        df = np.bincount(t.indices, minlength=t.shape[1])
        idf = np.log(t.shape[0] / np.maximum(df, 1)).astype(np.float32)
        t.data = np.log1p(t.data)
        t = sp.csr_matrix(t.multiply(idf[None, :]))
        norms = np.sqrt(np.asarray(t.multiply(t).sum(axis=1)).ravel())
        tt = t.T.tocsc()
        rows, cols, vals = [], [], []
        n = t.shape[0]
        for s in range(0, n, self.block):  # dense blocks, top-k per row (symmetric)
            blk = (t[s : s + self.block] @ tt).toarray()
            blk /= np.outer(norms[s : s + self.block], norms) + self.shrink + 1e-9
            blk[np.arange(blk.shape[0]), np.arange(s, s + blk.shape[0])] = 0.0
            kk = max(1, min(self.k, n - 1))
            nb = np.argpartition(-blk, kk - 1, axis=1)[:, :kk]
            v = np.take_along_axis(blk, nb, axis=1)
            keep = v > 0
            rows.append(nb[keep])
            cols.append(np.repeat(np.arange(s, s + blk.shape[0]), keep.sum(axis=1)))
            vals.append(v[keep])
        self.w = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, n),
            dtype=np.float32,
        )
        self.x = binary(train)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.x[users] @ self.w).toarray(), dtype=np.float32)


def zscore_rows(scores: np.ndarray, mask: sp.csr_matrix) -> np.ndarray:
    """Standardise each row over the items not in ``mask``; masked entries become 0."""
    s = np.array(scores, dtype=np.float32, copy=True)
    r, c = mask.nonzero()
    s[r, c] = np.nan
    mu = np.nanmean(s, axis=1, keepdims=True)
    sd = np.nanstd(s, axis=1, keepdims=True)
    s = (s - mu) / np.where(sd > 0, sd, 1.0)
    s[r, c] = 0.0
    return np.asarray(np.nan_to_num(s, nan=0.0), dtype=np.float32)


class Blend:
    """Weighted sum of per-user z-scored scores of fitted models (weights by name)."""

    def __init__(self, models: Mapping[str, Recommender], weights: Mapping[str, float]) -> None:
        self.models, self.weights = dict(models), dict(weights)

    def fit(self, train: sp.csr_matrix) -> Blend:
        self.mask = binary(train)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        m = self.mask[users]
        total = np.zeros((len(users), self.mask.shape[1]), dtype=np.float32)
        for name, w in self.weights.items():
            if w:
                total += np.float32(w) * zscore_rows(self.models[name].scores(users), m)
        return total
