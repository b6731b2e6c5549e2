"""The model artifacts the API serves from, hot-swapped by version.

A :class:`Bundle` is immutable: requests take the current reference once and
use it to the end, so a swap never changes what an in-flight request sees. The
:class:`BundleWatcher` polls the artifact pointers, loads a newer version off the
event loop, validates it (shapes, ids, a smoke query that must find an item as
its own nearest neighbour), and only then swaps the reference; on any failure
the old version stays, the failure is counted and shown, and that version is
tried again only after a backoff (the policy of :mod:`models.io.watcher`).

Arrays that are only read are memory-mapped (``.npy`` with ``mmap_mode="r"``, FAISS
indices with flat codes mapped in place), so several API processes serving the
same version share those pages through the page cache instead of holding a copy
each. Arrays the loader has to transform (ALS factors normalised, the MIPS index
built from them) stay private to each process.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from api import metrics
from models import fingerprint as fp
from models.audiofeatures import AudioSpace
from models.bandit import Policy
from models.io.artifacts import Artifact, ArtifactError, ArtifactStore, without_paths
from models.io.queryspace import load_query_space
from models.io.watcher import ArtifactWatcher, Failure
from models.serving import (
    Bundle,
    Collab,
    Content,
    Fingerprints,
    ModelError,
    ServedPolicy,
    StoreIndex,
    TopLists,
    items_of,
    make_collab,
    make_toplists,
    mips_augment,
    smoke,
    unit,
)
from models.taste import Space, Taste, make_taste

if TYPE_CHECKING:
    from models.io.s3 import S3Remote

KINDS = ("als", "lightgcn", "hybrid", "content", "fingerprint", "policy", "taste")
FIELD = {"als": "collab"}
"""Bundle field of an artifact kind, where the names differ."""
__all__ = [
    "Bundle",
    "BundleWatcher",
    "Collab",
    "Content",
    "Fingerprints",
    "mips_augment",
    "without_paths",
]


def _index(art: Artifact, name: str, vectors: np.ndarray) -> Any:
    """The artifact's FAISS index if it has one (flat codes memory-mapped where the
    index type allows, else read into memory), else an exact inner-product index."""
    if name in art.manifest["files"]:
        path = str(art.file(name))
        try:
            return faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:  # an index type without in-place mapping
            return faiss.read_index(path)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def _unit(rows: np.ndarray) -> np.ndarray:
    """``rows`` itself when they are already unit-length float32 (a mapped array stays
    shared), else a normalised copy."""
    if rows.dtype == np.float32 and rows.ndim == 2 and rows.flags.c_contiguous:
        norms = np.linalg.norm(rows, axis=1)
        if len(norms) and bool(np.all(np.abs(norms - 1.0) < 1e-4)):
            return rows
    return unit(rows)


def load_collab(art: Artifact) -> Collab:
    """Load and validate an "als" or "lightgcn" artifact."""
    files = art.manifest["files"]
    ids = art.json("item_ids.json")
    collab = make_collab(
        art.version,
        ids,
        art.array("item_factors.npy", mmap=True),
        art.json("user_ids.json"),
        art.array("user_factors.npy", mmap=True),
        art.array("popularity.npy", mmap=True) if "popularity.npy" in files else None,
        art.json("item_artists.json") if "item_artists.json" in files else None,
        what=f"{art.kind}/{art.version}",
    )
    _ = collab.popular_scores  # joined here, off the event loop, not by the first request
    return collab


def load_hybrid(art: Artifact) -> TopLists:
    """Load and validate a "hybrid" artifact (precomputed per-user lists)."""
    return make_toplists(
        art.version,
        art.json("item_ids.json"),
        art.json("user_ids.json"),
        art.array("top_items.npy", mmap=True),
        art.array("top_scores.npy", mmap=True),
    )


def load_policy(art: Artifact) -> ServedPolicy:
    """Load and validate a "policy" artifact (tuned arms, priors, list settings)."""
    params = art.manifest["params"]
    lam = params.get("mmr_lambda")
    if lam is not None and not 0.0 <= float(lam) <= 1.0:
        raise ModelError(f"policy/{art.version}: mmr_lambda {lam} outside [0, 1]")
    return ServedPolicy(
        art.version, Policy.from_json(params["policy"]), None if lam is None else float(lam)
    )


def load_taste(art: Artifact) -> Taste:
    """Load and validate a "taste" artifact (per-listener classifiers, ``batch/taste.py``)."""

    def arr(name: str) -> np.ndarray:
        return np.asarray(art.array(f"{name}.npy"), dtype=np.float64)

    components = arr("text_components")
    audio_dim = int(art.manifest["params"]["audio_dim"])
    if components.ndim != 2 or arr("feature_mean").shape != (audio_dim + components.shape[0],):
        raise ModelError(f"taste/{art.version}: inconsistent feature space")
    space = Space(audio_dim, arr("text_mean"), components, arr("feature_mean"), arr("feature_std"))
    return make_taste(
        art.version,
        str(art.manifest["params"]["content_version"]),
        art.json("user_ids.json"),
        art.array("weights.npy"),
        art.array("bias.npy"),
        art.array("prior.npy"),
        space,
    )


def _neighbours(art: Artifact, stem: str, n: int) -> dict[str, np.ndarray]:
    """The published neighbour table of an index (memory-mapped), if the version has one."""
    files = art.manifest["files"]
    if f"{stem}_neighbours.npy" not in files or f"{stem}_neighbour_scores.npy" not in files:
        return {}
    ids = art.array(f"{stem}_neighbours.npy", mmap=True)
    scores = art.array(f"{stem}_neighbour_scores.npy", mmap=True)
    if ids.ndim != 2 or ids.shape[0] != n or scores.shape != ids.shape:
        raise ArtifactError(f"content/{art.version}: {stem} neighbour table of shape {ids.shape}")
    if ids.size and (int(ids.max()) >= n or int(ids.min()) < -1):
        raise ArtifactError(f"content/{art.version}: {stem} neighbour ids out of range")
    return {f"{stem}_neighbours": ids, f"{stem}_neighbour_scores": scores}


def load_content(art: Artifact) -> Content:
    """Load and validate a "content" artifact."""
    ids = art.json("item_ids.json")
    items = art.json("items.json")
    text = _unit(art.array("text.npy", mmap=True))
    mood = np.asarray(art.array("mood.npy", mmap=True), dtype=np.float32)
    if len(items) != len(ids) or text.shape[0] != len(ids) or mood.shape != (len(ids), 2):
        raise ArtifactError(f"content/{art.version}: inconsistent shapes")
    files = art.manifest["files"]
    audio = _unit(art.array("audio.npy", mmap=True)) if "audio.npy" in files else None

    def opt(name: str) -> np.ndarray | None:
        return np.asarray(art.array(name), dtype=np.float32) if name in files else None

    lexicon = (
        {k: (float(v[0]), float(v[1])) for k, v in art.json("lexicon.json").items()}
        if "lexicon.json" in files
        else {}
    )
    text_index = _index(art, "text.faiss", text)
    audio_index = None if audio is None else _index(art, "audio.faiss", audio)
    reducer = [opt(f"audio_{part}.npy") for part in ("mean", "std", "components")]
    audio_space = None
    if audio is not None and all(r is not None for r in reducer):
        mean, std, components = (np.asarray(r, dtype=np.float64) for r in reducer)
        try:
            audio_space = AudioSpace(mean, std, components, int(audio.shape[1]))
        except ValueError as exc:
            raise ArtifactError(f"content/{art.version}: {exc}") from exc
    neighbours = _neighbours(art, "text", len(ids))
    content = Content(
        art.version,
        ids,
        {t: i for i, t in enumerate(ids)},
        items,
        text,
        text_index,
        mood,
        audio,
        audio_index,
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
        query_space=load_query_space(art, text_index=text_index, audio_index=audio_index),
        audio_space=audio_space,
        text_neighbours=neighbours.get("text_neighbours"),
        text_neighbour_scores=neighbours.get("text_neighbour_scores"),
    )
    smoke(content.text_index, text, f"content/{art.version}")
    _ = content.facts  # joined here, off the event loop, not by the first request
    return content


def with_stores(content: Content, stores: dict[str, Any]) -> Content:
    """The content model searching its spaces in vector stores, checked like its index:
    an item's own vector must find that item first."""
    text, audio = stores.get("text"), stores.get("audio")
    served = replace(content, text_store=text, audio_store=audio)
    space = content.query_space
    if space is not None and space.index is not None:  # a large catalog's query lookups
        n, idx = len(content.ids), space.index
        index = replace(
            idx,
            text=idx.text if text is None else StoreIndex(text, content.row, n),
            audio=idx.audio
            if audio is None or idx.audio is None
            else StoreIndex(audio, content.row, n),
        )
        served = replace(served, query_space=replace(space, index=index))
    probe = len(content.ids) // 2
    checks = [("text", served.search_text(content.text[probe], 1))]
    if content.audio is not None and served.audio_store is not None:
        checks.append(("audio", served.search_audio(content.audio[probe], 1)))
    for space, (rows, _) in checks:
        if len(rows) == 0 or rows[0] != probe:
            raise ModelError(f"content/{content.version}: {space} store smoke query failed")
    return served


def with_collab_store(collab: Collab, store: Any) -> Collab:
    """The ALS model searching its items in a vector store, checked before it serves: for
    an item's own factors the store must find at least 9 of the exact top 10 by inner
    product (a store missing rows or holding another version's fails)."""
    served = replace(collab, store=store)
    probe = collab.raw_items[len(collab.ids) // 2]
    exact = np.argsort(-(collab.raw_items @ probe), kind="stable")[:10]
    found = served.search(probe, 10)[0]
    if len(set(found.tolist()) & set(exact.tolist())) < min(9, len(exact)):
        raise ModelError(f"als/{collab.version}: collab store smoke query failed")
    return served


def load_fingerprints(art: Artifact) -> Fingerprints:
    """Load a "fingerprint" artifact (hashes, track rows, frames, track ids, thresholds)."""
    ids = list(art.json("track_ids.json"))
    index = fp.LandmarkIndex(
        art.array("hashes.npy", mmap=True),
        art.array("tracks.npy", mmap=True),
        art.array("frames.npy", mmap=True),
        len(ids),
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


LOADERS = {
    "als": load_collab,
    "lightgcn": load_collab,
    "hybrid": load_hybrid,
    "content": load_content,
    "fingerprint": load_fingerprints,
    "policy": load_policy,
    "taste": load_taste,
}


class BundleWatcher:
    """Keeps ``holder.bundle`` on the newest loadable artifact versions, by the policy of
    :class:`models.io.watcher.ArtifactWatcher`; a refused version is counted and shown in
    ``bundle.failures`` (store paths hidden)."""

    def __init__(
        self,
        holder: Any,
        root: Path,
        keep: int = 3,
        *,
        retry_s: float = 2.0,
        retry_max_s: float = 300.0,
        remote: S3Remote | None = None,
        vector_stores: Callable[[Artifact], dict[str, Any]] | None = None,
    ) -> None:
        """``vector_stores``: the content spaces' stores in the configured vector backend
        (:func:`models.io.vectors.serving_stores`); None searches the index files."""
        self.holder = holder
        self.vector_stores = vector_stores
        self.store = ArtifactStore(root, keep, remote)
        self.watcher = ArtifactWatcher(
            self.store,
            {kind: self._loader(kind) for kind in KINDS},
            self._served,
            self._swap,
            on_failure=self._refused,
            retry_s=retry_s,
            retry_max_s=retry_max_s,
        )

    @property
    def failed(self) -> dict[str, str]:
        """The refused version per kind."""
        return {kind: f.version for kind, f in self.watcher.failures.items()}

    def _loader(self, kind: str) -> Any:
        """The kind's loader, which also joins the item rows of the bundle the loaded
        part will make (:func:`models.serving.items_of`, cached by versions), so that
        work happens off the event loop too."""

        def load(art: Artifact) -> Any:
            part: Any = LOADERS[kind](art)
            if kind == "content" and self.vector_stores is not None:
                part = with_stores(part, self.vector_stores(art))
            if kind == "als" and self.vector_stores is not None:
                part = with_collab_store(part, self.vector_stores(art)["collab"])
            if kind in ("als", "lightgcn", "hybrid", "content"):
                items_of(replace(self.holder.bundle, **{FIELD.get(kind, kind): part}))
            return part

        return load

    def _served(self, kind: str) -> str | None:
        bundle: Bundle = self.holder.bundle
        return bundle.versions()[kind]

    def _swap(self, kind: str, version: str, part: Any) -> None:
        bundle: Bundle = self.holder.bundle
        failures = bundle.failures
        if kind in failures and kind not in self.watcher.failures:  # that version loads now
            failures = {k: v for k, v in failures.items() if k != kind}
        # one reference swap per kind
        self.holder.bundle = replace(bundle, failures=failures, **{FIELD.get(kind, kind): part})
        metrics.ARTIFACT_VERSION.labels(kind, version).set(1)
        # What a version loads (a catalog of 100,000 tracks is some 300,000 Python
        # objects) lives until the next version: out of the cycle collector's way, each
        # full collection would walk it and hold the event loop for 100-150 ms. Frozen
        # objects are still freed by reference counting when a newer version replaces
        # them.
        gc.freeze()

    def _refused(self, kind: str, failure: Failure) -> None:
        if failure.attempts == 1:
            metrics.ARTIFACT_FAILURES.labels(kind).inc()
        bundle: Bundle = self.holder.bundle
        self.holder.bundle = replace(bundle, failures={**bundle.failures, kind: str(failure)})

    async def check(self) -> list[str]:
        """Load and swap in every kind whose published version changed (and is due)."""
        return await self.watcher.check()

    async def run(self, interval_s: float) -> None:
        """Poll forever."""
        await self.watcher.run(interval_s)
