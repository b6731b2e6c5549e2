"""The content artifact's audio vectors from the learned encoder (``ENCORE_AUDIO_VECTORS=learned``).

The encoder is trained on the catalog's own audio at each content training
(self-supervised, :mod:`batch.encoder`), published as the ``audio_encoder``
artifact, and each track with audio is embedded by it. Tracks without an
embedding (no audio, or audio fetched over http(s), which is not kept after its
one decode) are imputed the way the librosa vectors are (the genre's mean, else
the text neighbours' mean), then normalised; a track with neither stays zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from batch import audio, encoder
from batch.impute import impute_rows
from models.io.artifacts import ArtifactStore
from models.io.localaudio import trusted_path, trusted_roots
from models.settings import AudioSettings


def config_of(settings: AudioSettings, seed: int = 0) -> encoder.EncoderConfig:
    """The encoder's settings from ``ENCORE_AUDIO_ENCODER_*``."""
    return encoder.EncoderConfig(dim=settings.encoder_dim, steps=settings.encoder_steps, seed=seed)


def local_waves(
    ids: Sequence[str],
    urls: dict[str, str],
    decoded: Sequence[str] | set[str],
    *,
    roots: Sequence[Path] = (),
    crop: audio.Crop = "start",
) -> dict[int, np.ndarray]:
    """Row -> the feature window of the track's audio, for the rows of ``ids`` whose
    audio was decoded (``decoded``) from a local file under the trusted roots. Tracks
    that link to one file share its decode."""
    trusted = trusted_roots(roots)
    done = set(decoded)
    by_path: dict[Path, np.ndarray] = {}
    out: dict[int, np.ndarray] = {}
    for i, t in enumerate(ids):
        url = urls.get(t)
        path = None if url is None or t not in done else trusted_path(url, trusted)
        if path is None:
            continue
        if path not in by_path:
            seconds = None if crop == "centre" else audio.MAX_SECONDS
            by_path[path] = audio.window(audio.load(path, audio.SAMPLE_RATE, seconds), crop)
        out[i] = by_path[path]
    return out


def learned_vectors(
    store: ArtifactStore,
    ids: Sequence[str],
    waves: dict[int, np.ndarray],
    genres: list[str | None],
    text: np.ndarray,
    config: encoder.EncoderConfig,
    *,
    progress: Callable[[int], None] | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[np.ndarray, list[str | None], dict[str, Any]]:
    """Train and publish an encoder on ``waves`` (row -> audio), embed them; returns the
    n x dim vectors (imputed rows included), how each row was imputed, and what the
    content manifest records (the encoder's version and training report)."""
    rows = sorted(waves)
    model, report = encoder.train([waves[i] for i in rows], config, progress=progress)
    emb = encoder.embed(model, [waves[i] for i in rows])
    version = encoder.publish_encoder(
        store, model, config, [ids[i] for i in rows], emb, metrics=report, data=data
    )
    out = np.zeros((len(ids), config.dim), dtype=np.float32)
    out[rows] = emb
    have = np.zeros(len(ids), dtype=bool)
    have[rows] = True
    filled, how = impute_rows(out, have, genres, text)
    norms = np.linalg.norm(filled, axis=1, keepdims=True)
    filled = np.where(norms > 1e-9, filled / np.maximum(norms, 1e-9), 0.0).astype(np.float32)
    info = {"audio_encoder_version": version, "audio_encoder": report, "embedded": len(rows)}
    return filled, how, info
