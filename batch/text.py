"""Sentence embeddings with all-MiniLM-L6-v2, offline, one thread.

The model is :class:`models.io.text.TextModel`, the loader the catalog agent
and the API use, so a track embedded in batch and the same track embedded live
land on the same vector. Texts go in chunks of 512 (the model sorts a chunk by
length, so little padding) with progress after each; loading takes seconds,
so one encoder is shared per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from batch.threads import one_thread
from models.io.text import TextModel

DIM = 384
MODEL_NAME = TextModel.name
CHUNK = 512


class MissingExtra(ImportError):
    """A feature needs an optional dependency group that is not installed."""


class TextEncoder:
    """Unit-length float32 embeddings of texts."""

    def __init__(self) -> None:
        self.model = TextModel()
        if not self.model.available():
            raise MissingExtra("text embeddings need the ml extra: pip install -e '.[ml]'")

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """(len(texts), 384) unit vectors; ``progress`` gets the count done after each chunk."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        with one_thread():
            for s in range(0, len(texts), CHUNK):
                chunk = list(texts[s : s + CHUNK])
                out[s : s + len(chunk)] = self.model.encode(chunk)
                if progress is not None:
                    progress(len(chunk))
        return out


@lru_cache(maxsize=1)
def encoder() -> TextEncoder:
    """The process-wide encoder (loaded on first use)."""
    return TextEncoder()


def text_key(text: str) -> str:
    """Stable key of a text, to reuse its vector from an earlier artifact."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def embed_with_cache(
    texts: Sequence[str],
    cached: dict[str, np.ndarray],
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Embed texts, reusing vectors of identical texts; returns (vectors, newly embedded)."""
    keys = [text_key(t) for t in texts]
    todo = sorted({k: i for i, k in enumerate(keys) if k not in cached}.values())
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    fresh: dict[str, np.ndarray] = {}
    if todo:
        vectors = encoder().encode([texts[i] for i in todo], progress=progress)
        fresh = {keys[i]: vectors[n] for n, i in enumerate(todo)}
    for i, k in enumerate(keys):
        out[i] = cached[k] if k in cached else fresh[k]
    if progress is not None:
        progress(len(texts) - len(todo))
    return out, len(todo)
