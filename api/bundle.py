"""The model artifacts the API serves from, hot-swapped by version.

A :class:`Bundle` is immutable: requests take the current reference once and
use it to the end, so a swap never changes what an in-flight request sees. The
:class:`BundleWatcher` polls the artifact pointers, loads a newer version off the
event loop, validates it (shapes, ids, a smoke query that must find an item as
its own nearest neighbour), and only then swaps the reference; on any failure
the old version stays and the failure is counted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from api import metrics
from models import fingerprint as fp
from models.index import build_index
from models.io.artifacts import Artifact, ArtifactError, ArtifactStore
from models.io.queryspace import load_query_space

log = logging.getLogger(__name__)
KINDS = ("als", "content", "fingerprint")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return np.asarray(
        x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9), dtype=np.float32
    )


def _index(art: Artifact, name: str, vectors: np.ndarray) -> Any:
    """The artifact's FAISS index if it has one, else an exact inner-product index."""
    if name in art.manifest["files"]:
        return faiss.read_index(str(art.file(name)))
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


@dataclass(frozen=True)
class Collab:
    """Collaborative model: item and user factors, popularity, item index."""

    version: str
    ids: list[str]
    row: dict[str, int]
    items: np.ndarray  # unit item factors
    raw_items: np.ndarray
    users: dict[str, int]
    user_factors: np.ndarray
    popularity: np.ndarray
    artists: list[str | None]
    index: Any  # over mips_augment(raw items)
    max_norm: float

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by inner product with the raw item factors (how ALS itself ranks:
        the factor norms carry item popularity), via the augmented unit index."""
        q = _unit(query.reshape(1, -1))
        q = np.hstack([q, np.zeros((1, 1), np.float32)])
        scores, rows = self.index.search(q, min(k, len(self.ids)))
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep] * self.max_norm


@dataclass(frozen=True)
class Content:
    """Content model: text, mood and audio spaces, item metadata, query maps."""

    version: str
    ids: list[str]
    row: dict[str, int]
    items: list[dict[str, Any]]
    text: np.ndarray
    text_index: Any
    mood: np.ndarray
    audio: np.ndarray | None
    audio_index: Any
    text_to_cf: np.ndarray | None
    text_to_cf_bias: np.ndarray | None
    cf_version: str
    text_to_mood: np.ndarray | None
    text_to_mood_bias: np.ndarray | None
    lexicon: dict[str, tuple[float, float]]
    genres: frozenset[str]
    artist_names: dict[str, str]  # lower-case name -> artist id
    query_space: Any = None  # models.query.QuerySpace of the tag files, None in older versions

    def search_text(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine in the text space."""
        scores, rows = self.text_index.search(_unit(query.reshape(1, -1)), min(k, len(self.ids)))
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]

    def search_audio(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine in the audio space (empty without audio)."""
        if self.audio_index is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores, rows = self.audio_index.search(_unit(query.reshape(1, -1)), min(k, len(self.ids)))
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]


@dataclass(frozen=True)
class Bundle:
    """Everything loaded from artifacts; None parts are not published yet."""

    collab: Collab | None = None
    content: Content | None = None
    fingerprint: Fingerprints | None = None
    failures: dict[str, str] = field(default_factory=dict)

    def versions(self) -> dict[str, str | None]:
        """Version per artifact kind in use."""
        return {
            "als": self.collab.version if self.collab else None,
            "content": self.content.version if self.content else None,
            "fingerprint": self.fingerprint.version if self.fingerprint else None,
        }


def load_collab(art: Artifact) -> Collab:
    """Load and validate an "als" (or "lightgcn") artifact."""
    ids = art.json("item_ids.json")
    raw = np.asarray(art.array("item_factors.npy"), dtype=np.float32)
    user_ids = art.json("user_ids.json")
    users = np.asarray(art.array("user_factors.npy"), dtype=np.float32)
    if (
        raw.ndim != 2
        or raw.shape[0] != len(ids)
        or users.shape[0] != len(user_ids)
        or users.shape[1] != raw.shape[1]
    ):
        raise ArtifactError(f"{art.kind}/{art.version}: inconsistent shapes")
    if not (np.isfinite(raw).all() and np.isfinite(users).all()):
        raise ArtifactError(f"{art.kind}/{art.version}: non-finite factors")
    unit = _unit(raw)
    pop = (
        np.asarray(art.array("popularity.npy"), dtype=np.float32)
        if "popularity.npy" in art.manifest["files"]
        else np.zeros(len(ids), np.float32)
    )
    artists = (
        art.json("item_artists.json")
        if "item_artists.json" in art.manifest["files"]
        else [None] * len(ids)
    )
    collab = Collab(
        art.version,
        ids,
        {t: i for i, t in enumerate(ids)},
        unit,
        raw,
        {u: i for i, u in enumerate(user_ids)},
        users,
        pop,
        artists,
        build_index(mips_augment(raw)),
        float(np.linalg.norm(raw, axis=1).max()),
    )
    _smoke(collab.index, mips_augment(raw), f"{art.kind}/{art.version}")
    return collab


def mips_augment(items: np.ndarray) -> np.ndarray:
    """Rows ``[x, sqrt(M^2 - |x|^2)] / M`` (M the largest norm): all of norm 1, and for a
    query ``[q, 0]`` the inner product ranks items exactly as ``q . x`` does. So a
    nearest-neighbour index over unit vectors answers maximum-inner-product search."""
    x = np.asarray(items, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    m = max(float(norms.max()), 1e-9)
    extra = np.sqrt(np.maximum(m * m - norms * norms, 0.0))[:, None]
    return np.ascontiguousarray(np.hstack([x, extra]) / m, dtype=np.float32)


def load_content(art: Artifact) -> Content:
    """Load and validate a "content" artifact."""
    ids = art.json("item_ids.json")
    items = art.json("items.json")
    text = _unit(art.array("text.npy"))
    mood = np.asarray(art.array("mood.npy"), dtype=np.float32)
    if len(items) != len(ids) or text.shape[0] != len(ids) or mood.shape != (len(ids), 2):
        raise ArtifactError(f"content/{art.version}: inconsistent shapes")
    files = art.manifest["files"]
    audio = _unit(art.array("audio.npy")) if "audio.npy" in files else None

    def opt(name: str) -> np.ndarray | None:
        return np.asarray(art.array(name), dtype=np.float32) if name in files else None

    lexicon = (
        {k: (float(v[0]), float(v[1])) for k, v in art.json("lexicon.json").items()}
        if "lexicon.json" in files
        else {}
    )
    content = Content(
        art.version,
        ids,
        {t: i for i, t in enumerate(ids)},
        items,
        text,
        _index(art, "text.faiss", text),
        mood,
        audio,
        None if audio is None else _index(art, "audio.faiss", audio),
        opt("text_to_cf.npy"),
        opt("text_to_cf_bias.npy"),
        str(art.manifest["params"].get("cf_version", "")),
        opt("text_to_mood.npy"),
        opt("text_to_mood_bias.npy"),
        lexicon,
        frozenset(str(i["genre"]).lower() for i in items if i.get("genre")),
        {
            str(i["artist"]).lower(): str(i.get("artist_id") or i["artist"])
            for i in items
            if i.get("artist")
        },
        query_space=load_query_space(art),
    )
    _smoke(content.text_index, text, f"content/{art.version}")
    return content


def _smoke(index: Any, vectors: np.ndarray, what: str) -> None:
    """A query with an item's own vector must return that item first."""
    if len(vectors) == 0:
        raise ArtifactError(f"{what}: empty")
    probe = len(vectors) // 2
    scores, rows = index.search(vectors[probe : probe + 1], 1)
    if rows[0][0] < 0 or scores[0][0] < float(vectors[probe] @ vectors[probe]) - 1e-3:
        raise ArtifactError(f"{what}: smoke query failed")


@dataclass(frozen=True)
class Fingerprints:
    """The loaded landmark index and what its rows are."""

    version: str
    index: fp.LandmarkIndex
    track_ids: list[str]
    min_votes: int
    min_ratio: float


def load_fingerprints(art: Artifact) -> Fingerprints:
    """Load a "fingerprint" artifact (hashes, track rows, frames, track ids, thresholds)."""
    ids = list(art.json("track_ids.json"))
    index = fp.LandmarkIndex(
        art.array("hashes.npy"), art.array("tracks.npy"), art.array("frames.npy"), len(ids)
    )
    if not (index.hashes.shape == index.tracks.shape == index.frames.shape):
        raise ValueError(f"fingerprint/{art.version}: inconsistent arrays")
    p = art.manifest["params"]
    return Fingerprints(
        art.version,
        index,
        ids,
        int(p.get("min_votes", fp.MIN_VOTES)),
        float(p.get("min_ratio", fp.MIN_RATIO)),
    )


LOADERS = {"als": load_collab, "content": load_content, "fingerprint": load_fingerprints}


class BundleWatcher:
    """Keeps ``holder.bundle`` on the newest loadable artifact versions."""

    def __init__(self, holder: Any, root: Path, keep: int = 3) -> None:
        self.holder = holder
        self.store = ArtifactStore(root, keep)
        self.failed: dict[str, str] = {}

    def _load(self, kind: str, version: str) -> Any:
        art = self.store.load(kind, version)
        return LOADERS[kind](art) if kind in LOADERS else art

    def _newest_loadable(self, kind: str, bad: str) -> Any:
        """The newest older version of a kind that loads, or None."""
        for version in reversed(self.store.versions(kind)):
            if version >= bad:
                continue
            try:
                part = self._load(kind, version)
            except (ArtifactError, OSError, ValueError, KeyError, RuntimeError):
                continue
            log.warning("serving older %s %s until a good version is published", kind, version)
            return part
        return None

    async def check(self) -> list[str]:
        """Load and swap in every kind whose published version changed."""
        bundle: Bundle = self.holder.bundle
        current = bundle.versions()
        swapped = []
        for kind in KINDS:
            version = self.store.current_version(kind)
            if version is None or version == current[kind] or self.failed.get(kind) == version:
                continue
            try:
                part = await asyncio.to_thread(self._load, kind, version)
            except (ArtifactError, OSError, ValueError, KeyError, RuntimeError) as exc:
                self.failed[kind] = version
                metrics.ARTIFACT_FAILURES.labels(kind).inc()
                log.error("keeping %s %s: %s", kind, current[kind], exc)
                bundle = replace(bundle, failures={**bundle.failures, kind: str(exc)})
                part = None
                if current[kind] is None:  # nothing served yet: fall back to an older version
                    part = await asyncio.to_thread(self._newest_loadable, kind, version)
                if part is None:
                    self.holder.bundle = bundle
                    continue
            name = {"als": "collab"}.get(kind, kind)
            bundle = replace(bundle, **{name: part})
            self.holder.bundle = bundle  # one reference swap per kind
            metrics.ARTIFACT_VERSION.labels(kind, version).set(1)
            swapped.append(kind)
            log.info("serving %s %s", kind, version)
        return swapped

    async def run(self, interval_s: float) -> None:
        """Poll forever."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("artifact watcher error")
            await asyncio.sleep(interval_s)
