"""``encore recommend-batch``: top-k lists for many users from a published model, as JSONL.

One line per requested user: ``{"user_id", "items", "scores", "model",
"version", "fallback"}``. Known users are ranked by their factors against
every item, skipping the items they had in training; users the model does not
know get the most popular items (``"fallback": "popularity"``). The output is
plain data, so anyone can score it with their own evaluation code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from batch.metrics import top_k
from models.io.artifacts import ArtifactStore


def read_users(path: Path) -> list[str]:
    """User ids, one per line (blank lines and ``#`` comments skipped)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def recommend(
    store: ArtifactStore, users: Iterable[str], k: int, out: Path, kind: str = "als"
) -> dict[str, int | str]:
    """Write the JSONL file; returns counts of known and fallback users."""
    art = store.load(kind)
    items = art.json("item_ids.json")
    row = {u: i for i, u in enumerate(art.json("user_ids.json"))}
    uf, itf = art.array("user_factors.npy"), art.array("item_factors.npy")
    seen = sp.csr_matrix(
        (
            np.ones(art.array("seen_indices.npy").size, dtype=np.float32),
            art.array("seen_indices.npy"),
            art.array("seen_indptr.npy"),
        ),
        shape=(uf.shape[0], itf.shape[0]),
    )
    pop = art.array("popularity.npy")
    pop_top = np.argsort(-pop, kind="stable")[:k]
    wanted = list(users)
    known = [u for u in wanted if u in row]
    lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in range(0, len(known), 512):
        chunk = np.array([row[u] for u in known[s : s + 512]])
        scores = uf[chunk] @ itf.T
        top = top_k(scores, seen[chunk], k)
        for n, u in enumerate(known[s : s + 512]):
            picked = np.take(scores[n], top[n])
            ok = np.isfinite(picked)  # fewer unseen items than k: no padding with seen ones
            lists[u] = (top[n][ok], picked[ok])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for u in wanted:
            top, sc = lists.get(u, (pop_top, pop[pop_top]))
            doc = {
                "user_id": u,
                "items": [items[i] for i in top],
                "scores": [round(float(x), 6) for x in sc],
                "model": kind,
                "version": art.version,
                "fallback": None if u in lists else "popularity",
            }
            f.write(json.dumps(doc) + "\n")
    return {"users": len(wanted), "known": len(lists), "fallback": len(wanted) - len(lists),
            "version": art.version}  # fmt: skip
