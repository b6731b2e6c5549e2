"""Pure helpers for content features shared by the catalog agent, batch and the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def track_text(meta: Mapping[str, Any]) -> str:
    """The text a track is embedded by: title, artist, album, genre, tags, description."""
    parts = []
    title, artist = meta.get("title"), meta.get("artist")
    if title and artist and title != artist:
        parts.append(f"{title} by {artist}.")
    elif title or artist:
        parts.append(f"{title or artist}.")
    if meta.get("album"):
        parts.append(f"Album: {meta['album']}.")
    if meta.get("genre"):
        parts.append(f"Genre: {meta['genre']}.")
    tags = meta.get("tags") or ()
    if tags:
        parts.append("Tags: " + ", ".join(tags) + ".")
    if meta.get("description"):
        parts.append(str(meta["description"]))
    return " ".join(parts) or "unknown track"


def project(
    text_vectors: np.ndarray, weights: np.ndarray, bias: np.ndarray | None = None
) -> np.ndarray:
    """Linear map (e.g. text embedding -> collaborative space, or -> valence/arousal)."""
    out = text_vectors.astype(np.float32) @ weights.astype(np.float32)
    if bias is not None:
        out = out + bias.astype(np.float32)
    return out


def track_doc_text(event: Any) -> str:
    """:func:`track_text` of a new-track event."""
    return track_text(event.model_dump(exclude_none=True))
