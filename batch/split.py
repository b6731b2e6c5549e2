"""Train / validation / test splits of a user x item matrix.

* :func:`random_split`: RecBole's ``RS [0.8, 0.1, 0.1]`` grouped by user, the
  protocol of its published Last.fm results. Each user's pairs are shuffled
  with a seeded generator and cut with RecBole's own size rule
  (:func:`recbole_sizes`), so small users still get one validation and one
  test item when they can spare them.
* :func:`temporal_split`: RecBole's ``TO`` ordering: each user's pairs sorted by
  time, the oldest 80% train, then validation, then the newest.
* :func:`dated_split`: a global time cut for data where only some pairs carry a
  date (Last.fm: the user's first tag on an artist); undated pairs stay in train.

Validation and test are binary; train keeps the strength (play counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from batch.data import binary


@dataclass
class Split:
    """Three disjoint matrices over the same users and items."""

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def train_valid(self) -> sp.csr_matrix:
        """Train plus validation pairs (binary): what a test ranking must not recommend."""
        return binary(self.train + self.valid)

    def refit_matrix(self) -> sp.csr_matrix:
        """Train strength plus validation pairs, for refitting after model selection."""
        extra = self.valid - self.valid.multiply(binary(self.train))
        return (self.train + extra).tocsr()


def recbole_sizes(total: int, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> list[int]:
    """RecBole's ``_calcu_split_ids``: truncate, train takes the rest, tiny parts get one."""
    counts = [int(r * total) for r in ratios]
    counts[0] = total - sum(counts[1:])
    for i in range(1, len(ratios)):
        if counts[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            counts[-i] += 1
            counts[0] -= 1
    return counts


def _assemble(counts: sp.csr_matrix, part: np.ndarray, info: dict[str, Any]) -> Split:
    coo = counts.tocoo()
    mats = []
    for p in (0, 1, 2):
        sel = part == p
        values = coo.data[sel] if p == 0 else np.ones(int(sel.sum()), dtype=np.float32)
        m = sp.csr_matrix((values, (coo.row[sel], coo.col[sel])), shape=counts.shape)
        mats.append(m.astype(np.float32))
    info = {**info, "train": int(mats[0].nnz), "valid": int(mats[1].nnz), "test": int(mats[2].nnz)}
    return Split(mats[0], mats[1], mats[2], info)


def _user_groups(coo: sp.coo_matrix) -> list[np.ndarray]:
    order = np.argsort(coo.row, kind="stable")
    bounds = np.searchsorted(coo.row[order], np.arange(coo.shape[0] + 1))
    return [order[bounds[u] : bounds[u + 1]] for u in range(coo.shape[0])]


def random_split(
    counts: sp.csr_matrix, seed: int, ratios: Sequence[float] = (0.8, 0.1, 0.1)
) -> Split:
    """Per user: shuffle (seeded), then cut by :func:`recbole_sizes`."""
    coo = counts.tocoo()
    rng = np.random.default_rng(seed)
    part = np.zeros(coo.nnz, dtype=np.int8)
    for idx in _user_groups(coo):
        if idx.size == 0:
            continue
        idx = rng.permutation(idx)
        a, b, _ = recbole_sizes(idx.size, ratios)
        part[idx[a : a + b]] = 1
        part[idx[a + b :]] = 2
    return _assemble(counts, part, {"protocol": "random", "seed": seed, "ratios": list(ratios)})


def temporal_split(
    counts: sp.csr_matrix, times: sp.csr_matrix, ratios: Sequence[float] = (0.8, 0.1, 0.1)
) -> Split:
    """Per user: sort by time (ties by item), oldest share to train, newest to test."""
    coo = counts.tocoo()
    when = np.asarray(times.tocsr()[coo.row, coo.col]).ravel()
    part = np.zeros(coo.nnz, dtype=np.int8)
    for idx in _user_groups(coo):
        if idx.size == 0:
            continue
        idx = idx[np.lexsort((coo.col[idx], when[idx]))]
        a, b, _ = recbole_sizes(idx.size, ratios)
        part[idx[a : a + b]] = 1
        part[idx[a + b :]] = 2
    return _assemble(counts, part, {"protocol": "temporal", "ratios": list(ratios)})


def dated_split(
    counts: sp.csr_matrix, dates: sp.csr_matrix, valid_q: float = 0.8, test_q: float = 0.9
) -> Split:
    """Global cut on the dated pairs' quantiles; undated pairs (no entry) stay in train."""
    coo = counts.tocoo()
    when = np.asarray(dates.tocsr()[coo.row, coo.col]).ravel()
    dated = when > 0
    if not dated.any():
        raise ValueError("no dated pairs to split on")
    t_valid, t_test = np.quantile(when[dated], [valid_q, test_q])
    part = np.zeros(coo.nnz, dtype=np.int8)
    part[dated & (when >= t_valid)] = 1
    part[dated & (when >= t_test)] = 2
    info = {
        "protocol": "temporal",
        "valid_from": float(t_valid),
        "test_from": float(t_test),
        "dated_share": float(dated.mean()),
    }
    return _assemble(counts, part, info)
