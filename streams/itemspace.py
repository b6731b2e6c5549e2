"""The item-embedding space the stream agents fold users into, hot-swapped by version.

It is the item factors of the published collaborative model (artifact kind from
``ENCORE_STREAM_SPACE_KIND``, default ``als``): ``item_ids.json`` and
``item_factors.npy``, rows L2-normalised here. A watcher polls the artifact
pointer and swaps in a newer version once it has loaded and checked it; on any
failure the current space stays (the one policy of :mod:`models.io.watcher`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.io.artifacts import Artifact, ArtifactError, ArtifactStore
from models.io.watcher import ArtifactWatcher
from streams import metrics

if TYPE_CHECKING:
    from models.io.s3 import S3Remote

log = logging.getLogger(__name__)


class ItemSpace:
    """Normalised item vectors by track id, of one artifact version."""

    def __init__(
        self,
        version: str,
        ids: list[str],
        vectors: np.ndarray,
        artists: list[str | None] | None = None,
    ) -> None:
        if vectors.ndim != 2 or len(ids) != vectors.shape[0]:
            raise ArtifactError(f"item space {version}: {len(ids)} ids vs {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.version = version
        self.dim = int(vectors.shape[1])
        self.vectors = (vectors / np.maximum(norms, 1e-9)).astype(np.float32)
        self.row = {t: i for i, t in enumerate(ids)}
        self.artists = artists

    def vector(self, track: str) -> np.ndarray | None:
        """The track's unit vector, or None when the model does not know it."""
        i = self.row.get(track)
        return None if i is None else self.vectors[i]

    def artist(self, track: str) -> str | None:
        """The track's artist as the model's metadata has it."""
        i = self.row.get(track)
        return None if i is None or self.artists is None else self.artists[i]

    def normalise_bytes(self, raw: bytes) -> np.ndarray | None:
        """A catalog-projected vector (float32 bytes) as a unit vector of this space."""
        v = np.frombuffer(raw, dtype="<f4")
        if v.shape[0] != self.dim:
            return None
        n = float(np.linalg.norm(v))
        return None if n == 0 else (v / n).astype(np.float32)


def space_of(art: Artifact) -> ItemSpace:
    """The checked item space of a verified artifact version."""
    ids = art.json("item_ids.json")
    vectors = art.array("item_factors.npy")
    artists = (
        art.json("item_artists.json") if "item_artists.json" in art.manifest["files"] else None
    )
    space = ItemSpace(art.version, ids, vectors, artists)
    if not np.isfinite(space.vectors).all():
        raise ArtifactError(f"{art.kind}/{art.version}: non-finite item factors")
    return space


def load_space(root: Path, kind: str, version: str | None = None) -> ItemSpace:
    """Load and check the item space of an artifact version."""
    return space_of(ArtifactStore(root).load(kind, version))


class SpaceWatcher:
    """Keeps ``lookup.space`` on the newest loadable version of the item space, by the
    policy of :class:`models.io.watcher.ArtifactWatcher` (backoff from ``interval_s``)."""

    def __init__(
        self,
        lookup: Any,
        root: Path,
        kind: str,
        interval_s: float,
        *,
        retry_max_s: float = 300.0,
        remote: S3Remote | None = None,
    ) -> None:
        self.lookup = lookup
        self.kind = kind
        self.interval_s = interval_s
        self.watcher = ArtifactWatcher(
            ArtifactStore(root, remote=remote),
            {kind: space_of},
            self._served,
            self._swap,
            retry_s=interval_s,
            retry_max_s=retry_max_s,
        )

    def _served(self, kind: str) -> str | None:
        space = getattr(self.lookup, "space", None)
        return None if space is None else str(space.version)

    def _swap(self, kind: str, version: str, space: ItemSpace) -> None:
        self.lookup.space = space
        metrics.ITEM_SPACE.labels(version).set(1)
        log.info("item space %s/%s has %d items", kind, version, len(space.row))

    async def check(self) -> bool:
        """Swap to a newer published version if one is due; returns whether it swapped."""
        return bool(await self.watcher.check())

    async def run(self) -> None:
        """Poll forever."""
        await self.watcher.run(self.interval_s)
