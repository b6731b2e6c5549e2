"""The item-embedding space the stream agents fold users into, hot-swapped by version.

It is the item factors of the published collaborative model (artifact kind from
``ENCORE_STREAM_SPACE_KIND``, default ``als``): ``item_ids.json`` and
``item_factors.npy``, rows L2-normalised here. A watcher polls the artifact
pointer and swaps in a newer version once it has loaded and checked it; on any
failure the current space stays.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np

from models.io.artifacts import ArtifactError, ArtifactStore
from streams import metrics

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


def load_space(root: Path, kind: str, version: str | None = None) -> ItemSpace:
    """Load and check the item space of an artifact version."""
    art = ArtifactStore(root).load(kind, version)
    ids = art.json("item_ids.json")
    vectors = art.array("item_factors.npy")
    artists = (
        art.json("item_artists.json") if "item_artists.json" in art.manifest["files"] else None
    )
    space = ItemSpace(art.version, ids, vectors, artists)
    if not np.isfinite(space.vectors).all():
        raise ArtifactError(f"{kind}/{art.version}: non-finite item factors")
    return space


class SpaceWatcher:
    """Keeps ``lookup.space`` on the newest loadable version of the item space."""

    def __init__(self, lookup: object, root: Path, kind: str, interval_s: float) -> None:
        self.lookup = lookup
        self.store = ArtifactStore(root)
        self.root = root
        self.kind = kind
        self.interval_s = interval_s
        self.failed: set[str] = set()

    async def check(self) -> bool:
        """Swap to a newer published version if there is one; returns whether it swapped."""
        version = self.store.current_version(self.kind)
        current = getattr(self.lookup, "space", None)
        if (
            version is None
            or version in self.failed
            or (current is not None and current.version == version)
        ):
            return False
        try:
            space = await asyncio.to_thread(load_space, self.root, self.kind, version)
        except (ArtifactError, OSError, ValueError) as exc:
            log.error("keeping item space %s: %s", getattr(current, "version", None), exc)
            self.failed.add(version)
            return False
        self.lookup.space = space  # type: ignore[attr-defined]
        metrics.ITEM_SPACE.labels(space.version).set(1)
        log.info("item space %s/%s loaded (%d items)", self.kind, version, len(space.row))
        return True

    async def run(self) -> None:
        """Poll forever."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)
