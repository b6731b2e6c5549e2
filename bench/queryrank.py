"""Query ranking cost against catalog size: the full scan and the candidate path.

``python -m bench.queryrank`` publishes synthetic ``content`` artifacts of 10k
and 100k tracks (random text and audio vectors, a 300-tag vocabulary with
skewed tag use and listener counts, popularity tiers, the published index
files; kept under ``var/bench/queryrank`` for the next run), loads each as the
API does (:func:`api.bundle.load_content`) and times the query route's pool
job (:func:`api.query._retrieve`: mood, :func:`models.query.rank`, candidates)
in-process, one thread, embeddings given: per call, over 18 descriptive, 4
artist and 2 mixed queries, each asked 5 times. Each catalog is ranked both
ways (the full scan: every item scored; candidates: only what
:mod:`models.queryindex` returns, then scored the same way); **served** is
what the threshold (:data:`models.queryindex.EXACT_MAX`) picks. A last row per
catalog ranks as for a version published without a tag space (the synthetic
content of ``bench.serving``): the route's fallback space, which the threshold
also decides.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from api.bundle import load_content
from api.query import _retrieve
from batch.threads import one_thread
from bench.common import ROOT, machine, save, table
from bench.httpload import QUERIES
from models import queryindex
from models.index import build_index
from models.io.artifacts import ArtifactError, ArtifactStore, save_array, save_json
from models.io.queryspace import load_query_space, save_tag_space
from models.serving import Bundle, Content
from models.tagspace import TagSpace, item_matrix

CATALOGS = (10_000, 100_000)
ROUNDS = 5
TIERS = ("head", "mid", "tail", "cold")
TIER_SHARE = (0.1, 0.2, 0.4, 0.3)
WORDS = [
    "ambient", "jazz", "rock", "pop", "electronic", "folk", "metal", "soul", "hip-hop",
    "chillout", "mellow", "sad", "happy", "energetic", "calm", "dark", "heavy", "dreamy",
    "romantic", "acoustic", "piano", "party", "summer", "workout", "groove", "indie", "angry",
    "relaxing", "melancholy", "upbeat",
]  # fmt: skip
VOCABULARY = WORDS + [f"tag{j}" for j in range(300 - len(WORDS))]
STORE = ROOT / "var" / "bench" / "queryrank"


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def publish(root: Path, tracks: int, seed: int = 0) -> str:
    """A synthetic ``content`` artifact with a tag space (reused when already there)."""
    store = ArtifactStore(root)
    try:
        return store.load("content").version
    except ArtifactError:
        pass
    rng = np.random.default_rng(seed)
    use = 1.0 / np.arange(1, len(VOCABULARY) + 1)
    use /= use.sum()
    tags, counts = [], []
    for _ in range(tracks):
        picked = rng.choice(len(VOCABULARY), size=int(rng.integers(1, 9)), p=use)
        names = list(dict.fromkeys(VOCABULARY[j] for j in picked))
        tags.append(names)
        counts.append({t: float(rng.integers(1, 30)) for t in names})
    tier = rng.choice(len(TIERS), size=tracks, p=TIER_SHARE)
    has_audio = rng.random(tracks) < 0.5
    items = [
        {
            "title": f"Track {i}",
            "artist": f"Band{i // 10}",
            "artist_id": f"a{i // 10}",
            "genre": tags[i][0],
            "tags": tags[i],
            "popularity_tier": TIERS[tier[i]],
            "has_audio": bool(has_audio[i]),
        }
        for i in range(tracks)
    ]
    text = _unit(rng.normal(size=(tracks, 384)))
    audio = _unit(rng.normal(size=(tracks, 16)))
    vectors = _unit(rng.normal(size=(len(VOCABULARY), 384)))
    space = TagSpace(
        VOCABULARY,
        vectors,
        item_matrix(tags, VOCABULARY, counts),
        rng.uniform(-1, 1, size=(len(VOCABULARY), 2)).astype(np.float32),
    )
    path = store.stage("content")
    save_json(path, "item_ids.json", [f"t{i}" for i in range(tracks)])
    save_json(path, "items.json", items)
    save_array(path, "text", text)
    save_array(path, "mood", rng.uniform(-1, 1, size=(tracks, 2)).astype(np.float32))
    save_array(path, "audio", audio)
    faiss.write_index(build_index(text), str(path / "text.faiss"))
    faiss.write_index(build_index(audio), str(path / "audio.faiss"))
    save_array(path, "text_to_mood", (rng.normal(size=(384, 2)) * 0.05).astype(np.float32))
    save_array(path, "text_to_mood_bias", np.zeros(2, np.float32))
    save_json(path, "lexicon.json", {"calm": [0.4, -0.7], "happy": [0.8, 0.4], "sad": [-0.7, -0.3]})
    save_tag_space(path, space)
    return store.publish("content", path, params={"synthetic": True})


def queries(content: Content, seed: int = 1) -> list[tuple[str, np.ndarray]]:
    """The load generator's 18 texts, 4 band names and 2 band-and-genre mixes, each with a
    vector near one to three tags of the vocabulary."""
    rng = np.random.default_rng(seed)
    space = content.query_space
    assert space is not None
    texts = [*QUERIES, "band12", "band345", "band7", "band900", "band12 jazz", "band77 ambient"]
    out = []
    for text in texts:
        near = space.tags.vectors[rng.choice(len(VOCABULARY), size=int(rng.integers(1, 4)))]
        vec = near.sum(axis=0) + 0.3 * rng.normal(size=near.shape[1])
        out.append((text, _unit(vec[None, :])[0]))
    return out


def time_ranking(content: Content, asked: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Median and p95 ms of the route's pool job, per call."""
    items = Bundle(content=content).items
    for text, vec in asked:  # warm up
        _retrieve(content, items, text, vec)
    ms: list[float] = []
    kinds: dict[str, int] = {}
    for _ in range(ROUNDS):
        for text, vec in asked:
            t = time.perf_counter()
            _mood, ranking, _pool = _retrieve(content, items, text, vec)
            ms.append((time.perf_counter() - t) * 1000)
            kinds[ranking.intent.kind] = kinds.get(ranking.intent.kind, 0) + 1
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "calls": len(ms),
        "intents": {k: v // ROUNDS for k, v in kinds.items()},
    }


def run(catalogs: tuple[int, ...] = CATALOGS) -> dict[str, Any]:
    started = machine()
    rows: list[dict[str, Any]] = []
    for tracks in catalogs:
        store = ArtifactStore(STORE / str(tracks))
        t = time.perf_counter()
        version = publish(STORE / str(tracks), tracks)
        published_s = time.perf_counter() - t
        art = store.load("content", version)
        content = load_content(art)
        asked = queries(content)
        for mode, exact_max in (("full scan", sys.maxsize), ("candidates", 0)):
            t = time.perf_counter()
            space = load_query_space(
                art,
                text_index=content.text_index,
                audio_index=content.audio_index,
                exact_max=exact_max,
            )
            load_s = time.perf_counter() - t
            with one_thread():
                timed = time_ranking(replace(content, query_space=space), asked)
            rows.append(
                {
                    "catalog": tracks,
                    "mode": mode,
                    "served": (mode == "candidates") == (tracks > queryindex.EXACT_MAX),
                    "space_load_s": round(load_s, 2),
                    "publish_s": round(published_s, 1),
                    **timed,
                }
            )
        # A version published without a tag space (as bench.serving's): the route's
        # fallback space, descriptive queries in the text space, as the threshold picks
        # (and, where that is the candidates, once more with every item scored).
        for mode, limit in (("no tag space", queryindex.EXACT_MAX), ("no tag space, full scan", 0)):
            if limit == 0 and tracks <= queryindex.EXACT_MAX:
                continue
            saved = queryindex.EXACT_MAX
            queryindex.EXACT_MAX = limit or sys.maxsize  # read when the fallback is built
            try:
                bare = replace(content, version=f"{content.version}-{mode}", query_space=None)
                with one_thread():
                    timed = time_ranking(bare, asked)
            finally:
                queryindex.EXACT_MAX = saved
            rows.append(
                {
                    "catalog": tracks,
                    "mode": mode,
                    "served": limit > 0,
                    "space_load_s": None,
                    "publish_s": round(published_s, 1),
                    **timed,
                }
            )
    return {
        "name": "queryrank",
        "machine": {**started, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "params": {
            "rounds": ROUNDS,
            "queries": len(QUERIES) + 6,
            "exact_max": queryindex.EXACT_MAX,
            "pools": {
                "text": queryindex.POOL_TEXT,
                "tag": queryindex.POOL_TAG,
                "mood": queryindex.POOL_MOOD,
                "audio": queryindex.POOL_AUDIO,
                "prior": queryindex.POOL_PRIOR,
            },
            "threads": 1,
        },
        "runs": rows,
        "ratios": ratios(rows),
    }


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median cost at the largest catalog over the smallest, per mode and as served."""
    small, large = min(r["catalog"] for r in rows), max(r["catalog"] for r in rows)

    def median(catalog: int, **match: Any) -> float:
        return float(
            next(
                r["median_ms"]
                for r in rows
                if r["catalog"] == catalog and all(r[k] == v for k, v in match.items())
            )
        )

    out = {
        mode: round(median(large, mode=mode) / median(small, mode=mode), 2)
        for mode in ("full scan", "candidates", "no tag space")
    }
    served = median(large, served=True, mode="candidates")
    out["served"] = round(served / median(small, served=True, mode="full scan"), 2)
    return out


def render(r: dict[str, Any]) -> str:
    body = table(
        [
            (
                f"{x['catalog']:,}",
                x["mode"] + (" (served)" if x["served"] else ""),
                x["median_ms"],
                x["p95_ms"],
                "" if x["space_load_s"] is None else x["space_load_s"],
            )
            for x in r["runs"]
        ],
        ["tracks", "ranking", "median ms", "p95 ms", "query space load s"],
    )
    ratio = ", ".join(f"{k} {v}x" for k, v in r["ratios"].items())
    m = r["machine"]
    return (
        f"{body}\n\n100k / 10k median: {ratio}; load average at start "
        f"{m['load_avg_at_start']}, at end {m['load_avg_at_end']}"
    )


def main() -> None:
    result = run()
    path = save("queryrank", result)
    print(render(result))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
