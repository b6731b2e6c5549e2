"""Content vectors for new tracks, computed by the catalog agent before its write.

The text embedding (all-MiniLM-L6-v2, from the ``ml`` extra, loaded offline)
makes a track searchable and comparable within seconds of its event. When the
published ``content`` artifact carries them, two linear maps turn that text
vector into a vector of the collaborative item space (so the real-time fold and
the personal ranking can use a brand-new track) and into valence/arousal.
Without the ``ml`` extra the agent still stores the metadata; text vectors
then come with the next batch run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.apply import ContentVectors
from models.content import project, track_doc_text
from models.io.artifacts import ArtifactError, ArtifactStore
from models.io.text import TextModel

if TYPE_CHECKING:
    from models.io.s3 import S3Remote

log = logging.getLogger(__name__)


class ContentEncoder:
    """Callable used by the applier: new-track events -> :class:`ContentVectors`."""

    def __init__(
        self, artifacts_root: Path, text: TextModel | None = None, remote: S3Remote | None = None
    ) -> None:
        self.store = ArtifactStore(artifacts_root, remote=remote)
        self.text = text or TextModel()
        self.enabled = self.text.available()
        self._maps: tuple[str, dict[str, np.ndarray]] | None = None
        if not self.enabled:
            log.warning("text embedding off: install the 'ml' extra (pip install -e '.[ml]')")

    def maps(self) -> tuple[str, dict[str, np.ndarray]]:
        """Linear maps of the published content artifact (reloaded when it changes)."""
        version = self.store.current_version("content")
        if version is None:
            return "", {}
        if self._maps is None or self._maps[0] != version:
            try:
                art = self.store.load("content", version)
                arrays = {
                    name[:-4]: art.array(name)
                    for name in art.manifest["files"]
                    if name
                    in {
                        "text_to_cf.npy",
                        "text_to_cf_bias.npy",
                        "text_to_mood.npy",
                        "text_to_mood_bias.npy",
                    }
                }
                arrays["_space"] = np.array([art.manifest["params"].get("cf_version", "")])
                self._maps = (version, arrays)
            except (ArtifactError, OSError, ValueError) as exc:
                log.error("content artifact %s unusable: %s", version, exc)
                return ("", {}) if self._maps is None else self._maps
        return self._maps

    async def __call__(self, events: Sequence[Any]) -> dict[str, ContentVectors]:
        if not self.enabled or not events:
            return {}
        texts = [track_doc_text(e) for e in events]
        vectors = await asyncio.to_thread(self.text.encode, texts)
        _, maps = await asyncio.to_thread(self.maps)  # a request when the store has a remote
        cf = mood = None
        space = ""
        if "text_to_cf" in maps:
            cf = project(vectors, maps["text_to_cf"], maps.get("text_to_cf_bias"))
            space = str(maps["_space"][0])
        if "text_to_mood" in maps:
            mood = np.clip(
                project(vectors, maps["text_to_mood"], maps.get("text_to_mood_bias")), -1.0, 1.0
            )
        out = {}
        for i, e in enumerate(events):
            out[e.track_id] = ContentVectors(
                text=vectors[i],
                collab=None if cf is None else cf[i],
                valence=None if mood is None else float(mood[i, 0]),
                arousal=None if mood is None else float(mood[i, 1]),
                model=space,
            )
        return out
