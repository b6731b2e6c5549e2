"""Publish and load the ``fingerprint`` artifact (landmark index for identify).

Files: ``hashes.npy`` (uint32, ascending), ``tracks.npy`` (int32 row into
``track_ids.json``), ``frames.npy`` (int32 anchor frame), ``track_ids.json``;
the manifest's params carry the front end (8 kHz, STFT 512/128) and the
acceptance thresholds, so a reader applies the same rule the index was
validated with. The hashing and the query are pure (:mod:`models.fingerprint`),
so the API can identify an excerpt without importing batch code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from batch import audio
from models import fingerprint as fp
from models.io.artifacts import Artifact, ArtifactStore, save_array, save_json


def params() -> dict[str, Any]:
    """The front end and decision rule, as stored in the manifest."""
    return {
        "sample_rate": fp.SAMPLE_RATE,
        "n_fft": fp.N_FFT,
        "hop": fp.HOP,
        "peaks_per_second": fp.PEAKS_PER_SECOND,
        "fan_out": fp.FAN_OUT,
        "min_votes": fp.MIN_VOTES,
        "min_ratio": fp.MIN_RATIO,
    }


def publish_fingerprints(
    store: ArtifactStore,
    hashes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    data: Mapping[str, Any],
) -> str:
    """Index the tracks' landmark hashes and publish them."""
    ids = sorted(hashes)
    index = fp.LandmarkIndex.from_hashes([hashes[t] for t in ids])
    path = store.stage("fingerprint")
    save_json(path, "track_ids.json", ids)
    save_array(path, "hashes", index.hashes)
    save_array(path, "tracks", index.tracks)
    save_array(path, "frames", index.frames)
    metrics = {"tracks": len(ids), "hashes": int(index.hashes.size)}
    return store.publish("fingerprint", path, params=params(), metrics=metrics, data=data)


def load_index(art: Artifact) -> tuple[fp.LandmarkIndex, list[str]]:
    """The landmark index and track ids of a loaded ``fingerprint`` artifact."""
    ids = list(art.json("track_ids.json"))
    index = fp.LandmarkIndex(
        art.array("hashes.npy"), art.array("tracks.npy"), art.array("frames.npy"), len(ids)
    )
    return index, ids


def identify(art: Artifact, excerpt: np.ndarray) -> dict[str, Any] | None:
    """Best track for 8 kHz mono audio under the artifact's own thresholds."""
    index, ids = load_index(art)
    p = art.manifest["params"]
    match = index.query(excerpt, int(p["min_votes"]), float(p["min_ratio"]))
    if match is None:
        return None
    return {
        "track_id": ids[match.track],
        "votes": match.votes,
        "runner_up": match.runner_up,
        "accepted": match.accepted,
    }


def excerpt(url: str, start_s: float, seconds: float) -> np.ndarray:
    """A piece of a track's audio at the fingerprint rate (for tests and tools)."""
    path = audio.path_of(url)
    if path is None:
        raise ValueError(f"not a file:// url: {url}")
    y = audio.load(path, fp.SAMPLE_RATE, None)
    a = int(start_s * fp.SAMPLE_RATE)
    return np.asarray(y[a : a + int(seconds * fp.SAMPLE_RATE)])
