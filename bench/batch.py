"""Batch costs: training time on Last.fm and on a synthetic 1M-interaction matrix, index
build and search, text and audio embedding rates (one thread each, as in production).

Quality is not re-measured here; ``encore eval`` measures it (reports/lastfm-2k/).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from batch.als import ALS
from batch.threads import limit_env
from bench.common import ROOT, machine, save, table
from models.index import build_index
from models.settings import AudioSettings

LASTFM = Path(
    os.environ.get(
        "ENCORE_LASTFM_DIR", ROOT.parent / "shared" / "datasets" / "hetrec2011-lastfm-2k"
    )
)


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def synthetic(
    users: int = 50_000, items: int = 20_000, nnz: int = 1_000_000, seed: int = 0
) -> sp.csr_matrix:
    """A Zipf-popular random interaction matrix with play counts."""
    rng = np.random.default_rng(seed)
    draws = 3 * nnz  # Zipf popularity repeats pairs; draw more, then keep ``nnz`` distinct
    u = rng.integers(0, users, draws)
    i = (rng.zipf(1.3, draws) - 1) % items
    m = sp.coo_matrix((rng.integers(1, 50, draws).astype(np.float32), (u, i)), (users, items))
    m.sum_duplicates()
    keep = np.sort(rng.choice(m.nnz, size=min(nnz, m.nnz), replace=False))
    return sp.csr_matrix((m.data[keep], (m.row[keep], m.col[keep])), shape=(users, items))


def lightgcn_epoch_s(matrix: sp.csr_matrix, epochs: int = 3) -> float:
    """Seconds per training epoch of LightGCN (no early stopping)."""
    from batch.lightgcn import LightGCN

    model = LightGCN(epochs=epochs, eval_every=10_000, layers=3)
    _, seconds = _timed(lambda: model.fit(matrix))
    return seconds / epochs


def _training(out: dict[str, Any], rows: list[list[str]]) -> None:
    if (LASTFM / "user_artists.dat").is_file():
        from batch.datasets import read_lastfm

        data = read_lastfm(LASTFM)
        m = sp.csr_matrix(
            (data.weight, (data.user_idx, data.item_idx)), shape=(len(data.users), len(data.items))
        )
        _, als_s = _timed(lambda: ALS().fit(m))
        gcn_s = lightgcn_epoch_s(m)
        out["lastfm"] = {
            "nnz": int(m.nnz),
            "als_fit_s": round(als_s, 2),
            "lightgcn_epoch_s": round(gcn_s, 2),
        }
        rows += [
            ["ALS fit, Last.fm 2k (92,834 pairs)", f"{als_s:.2f} s", "64 factors, 15 it."],
            ["LightGCN epoch, Last.fm 2k", f"{gcn_s:.2f} s", "3 layers, batch 4096"],
        ]
    big = synthetic()
    _, als_s = _timed(lambda: ALS().fit(big))
    gcn_s = lightgcn_epoch_s(big, epochs=1)
    out["synthetic"] = {
        "shape": list(big.shape),
        "nnz": int(big.nnz),
        "als_fit_s": round(als_s, 2),
        "lightgcn_epoch_s": round(gcn_s, 2),
    }
    rows += [
        [f"ALS fit, synthetic {big.nnz:,} non-zeros", f"{als_s:.2f} s", "64 factors, 15 it."],
        ["LightGCN epoch, synthetic", f"{gcn_s:.2f} s", "3 layers"],
    ]


def _index(out: dict[str, Any], rows: list[list[str]]) -> None:
    rng = np.random.default_rng(1)
    for n, d in ((100_000, 64), (100_000, 384)):
        x = rng.normal(size=(n, d)).astype(np.float32)
        index, build_s = _timed(lambda x=x: build_index(x))
        q = x[:200] / np.linalg.norm(x[:200], axis=1, keepdims=True)
        _, search_s = _timed(lambda q=q, index=index: index.search(q, 100))
        kind = type(index.index if hasattr(index, "index") else index).__name__
        out[f"index_{n}x{d}"] = {
            "build_s": round(build_s, 2),
            "search_ms_per_query": round(search_s / 200 * 1000, 3),
            "kind": kind,
        }
        rows.append(
            [
                f"index build {n:,} x {d} ({kind})",
                f"{build_s:.1f} s",
                f"top-100 search {search_s / 200 * 1000:.2f} ms/query",
            ]
        )


def _text(out: dict[str, Any], rows: list[list[str]]) -> None:
    from batch.text import encoder

    texts = [
        f"Track {i} by Artist {i % 97}. Genre: jazz. Tags: late night, smooth, mellow."
        for i in range(512)
    ]
    enc = encoder()
    enc.encode(texts[:8])  # load the model first
    _, text_s = _timed(lambda: enc.encode(texts))
    out["text_embed_per_s"] = round(len(texts) / text_s, 1)
    rows.append(
        [
            "text embedding (all-MiniLM-L6-v2)",
            f"{len(texts) / text_s:.0f} texts/s",
            "batch 64, one thread",
        ]
    )


def _audio(out: dict[str, Any], rows: list[list[str]]) -> None:
    """Features of every packaged clip, decoded in this process and then in a pool of one
    worker per core (``ENCORE_AUDIO_WORKERS=0``, the default), each after a warm-up
    (librosa's first compile here; the pool's forkserver importing librosa)."""
    try:
        from batch import audio_sources
        from batch.audio import Decoding, analyse
    except ImportError:
        return
    clips = audio_sources.clips() if audio_sources.available() else []
    if not clips:
        return
    tracks = [(c.track_id, c.path.resolve().as_uri()) for c in clips]
    rates = []
    for decoding in (Decoding(workers=1), Decoding.of(AudioSettings(workers=0))):
        analyse(tracks[:2], fingerprints=False, decoding=decoding)
        _, seconds = _timed(lambda d=decoding: analyse(tracks, fingerprints=False, decoding=d))
        rates.append(len(tracks) / seconds)
    single, pooled = rates
    workers = decoding.workers
    out["audio_features_per_s"] = round(single, 2)
    out["audio_features_pool"] = {
        "clips": len(tracks),
        "workers": workers,
        "per_s": round(pooled, 2),
        "speedup": round(pooled / single, 2),
    }
    rows += [
        [
            "audio features (librosa, 30 s at 22 kHz), 1 worker",
            f"{single:.2f} tracks/s",
            f"Opus decode included, {len(tracks)} clips",
        ],
        [
            f"audio features, {workers} workers",
            f"{pooled:.2f} tracks/s",
            f"{pooled / single:.2f} x one worker",
        ],
    ]


PARTS = {"training": _training, "index": _index, "text": _text, "audio": _audio}
"""Parts of the benchmark, in the order they run; ``encore bench batch --only`` picks one."""


def run(only: str | None = None) -> dict[str, Any]:
    limit_env()
    out: dict[str, Any] = {"name": "batch", "machine": machine()}
    rows: list[list[str]] = []
    for name, part in PARTS.items():
        if only in (None, name):
            part(out, rows)
    out["table"] = rows
    return out


def render(r: dict[str, Any]) -> str:
    return table(r["table"], ["job", "cost", "note"])


def main(only: str | None = None) -> None:
    """Run every part (saved as ``batch``) or only one (saved as ``batch-<part>``)."""
    if only is not None and only not in PARTS:
        raise SystemExit(f"unknown part {only!r}; choose from {', '.join(PARTS)}")
    result = run(only)
    path = save("batch" if only is None else f"batch-{only}", result)
    print(render(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
