"""Audio features with librosa: 69 numbers per track, reduced to a small unit vector.

One STFT of 30 s of 22.05 kHz mono (the first 30 s, or the middle ones:
``ENCORE_AUDIO_CROP``) feeds every feature (:mod:`models.audiofeatures`, where
they are defined, since the API computes them for clips too): tempo,
beat strength (onset autocorrelation), onset strength and rate, 20 MFCC means
and standard deviations, spectral centroid, rolloff and flux, 12 chroma means,
RMS, zero-crossing rate, and a Krumhansl major-minus-minor score with key
clarity. 30 s is enough for "sounds like" and mood; decoding dominates the cost,
so :func:`analyse` decodes each file once, in a pool of worker processes, for the
features (which the mood cues are computed from) and the fingerprints together.

:class:`Reducer` standardises and projects to 16 dimensions (PCA without
whitening: whitening amplifies noise components of small catalogs and lost most
of the nearest-neighbour agreement) and L2-normalises, for the ``audio`` index.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from batch.remote_audio import Fetched, Remote, fetch_each
from batch.threads import one_thread, worker_init
from models.audiofeatures import (
    AUDIO_DIM,
    FEATURES,
    MAJOR_PROFILE,
    MAX_SECONDS,
    MINOR_PROFILE,
    PITCHES,
    SAMPLE_RATE,
    extract,
    reduce,
)
from models.io.localaudio import trusted_path, trusted_roots
from models.settings import AudioSettings
from models.urls import file_path, is_web

__all__ = [  # the feature definitions live in models.audiofeatures (the API uses them too)
    "AUDIO_DIM",
    "FEATURES",
    "MAX_SECONDS",
    "PITCHES",
    "SAMPLE_RATE",
    "AudioPass",
    "Crop",
    "Decoding",
    "Reducer",
    "analyse",
    "describe",
    "extract",
    "load",
    "path_of",
    "window",
]
Crop = Literal["start", "centre"]
_T = TypeVar("_T")
_PRELOAD = [
    "batch.audio",
    "models.audiofeatures",
    "librosa.core",
    "librosa.feature",
    "librosa.onset",
    "models.fingerprint",
]


def path_of(url: str) -> Path | None:
    """The local file a ``file://`` URL names, trusted or not (for tests and tools; catalog
    audio goes through :func:`analyse`, which reads only files under trusted roots)."""
    path = file_path(url)
    return None if path is None else Path(path)


def load(path: Path | str, sr: int = SAMPLE_RATE, max_seconds: float | None = MAX_SECONDS) -> Any:
    """Mono float32 audio at ``sr`` Hz, the first ``max_seconds`` (None: all)."""
    import librosa

    y, _ = librosa.load(str(path), sr=sr, mono=True, duration=max_seconds, res_type="soxr_hq")
    return np.asarray(y, dtype=np.float32)


def describe(features: np.ndarray, crop: Crop = "start") -> dict[str, Any]:
    """What a listener can read from one track's :data:`FEATURES` row: tempo, the key
    and mode whose profile fits the mean chroma best, and loudness (mean RMS)."""
    row = dict(zip(FEATURES, (float(x) for x in features), strict=True))
    chroma = np.array([row[f"chroma_{p}"] for p in PITCHES])
    c = chroma - chroma.mean()
    best: tuple[float, str, str] = (-np.inf, "", "")
    for mode, prof in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        p = prof - prof.mean()
        for k in range(12):
            r = float(np.nan_to_num(np.corrcoef(c, np.roll(p, k))[0, 1], nan=-1.0))
            if r > best[0]:
                best = (r, PITCHES[k], mode)
    where = "first" if crop == "start" else "middle"
    return {
        "tempo_bpm": round(row["tempo"], 1),
        "key": best[1],
        "mode": best[2],
        "key_clarity": round(row["key_clarity"], 3),
        "loudness_rms": round(row["rms_mean"], 4),
        "from": f"librosa, {where} {MAX_SECONDS:g} s of the audio",
    }


def window(y: np.ndarray, crop: Crop) -> np.ndarray:
    """The :data:`MAX_SECONDS` the features describe: the first, or the middle ones."""
    n = int(MAX_SECONDS * SAMPLE_RATE)
    start = max(0, (y.size - n) // 2) if crop == "centre" else 0
    return y[start : start + n]


class Reducer:
    """Standardise, PCA to ``dim`` (no whitening), zero-pad small catalogs, L2-normalise."""

    def __init__(self, dim: int = AUDIO_DIM) -> None:
        self.dim = dim

    def fit(self, x: np.ndarray) -> Reducer:
        x = np.asarray(x, dtype=np.float64)
        self.mean = x.mean(axis=0)
        self.std = x.std(axis=0) + 1e-8
        z = (x - self.mean) / self.std
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        keep = max(1, min(self.dim, x.shape[0] - 1, x.shape[1]))
        self.components = vt[:keep]
        total = float((s**2).sum()) or 1.0
        self.explained = float((s[:keep] ** 2).sum() / total)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return reduce(x, self.mean, self.std, self.components, self.dim)


@dataclass(frozen=True)
class Decoding:
    """How :func:`analyse` decodes: in how many processes, and which window the features see."""

    workers: int = 1
    crop: Crop = "start"

    @classmethod
    def of(cls, settings: AudioSettings) -> Decoding:
        """``ENCORE_AUDIO_WORKERS`` (0: one per core this process may use) and ``_CROP``."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return cls(settings.workers or cores or 1, settings.crop)


@dataclass
class AudioPass:
    """What one read of each track's audio produced. The counters are tracks: local
    links outside the trusted roots, and remote links by outcome (``remote_audio``)."""

    features: dict[str, np.ndarray] = field(default_factory=dict)
    hashes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    untrusted: int = 0
    fetched: int = 0
    cached: int = 0
    refused: int = 0
    failed: int = 0
    seconds: float = 0.0

    def remote_info(self) -> dict[str, int]:
        """The remote counters as a published artifact reports them."""
        return {
            f"remote_audio_{outcome}": getattr(self, outcome)
            for outcome in ("fetched", "cached", "refused", "failed")
        }


def analyse(
    tracks: Sequence[tuple[str, str]],
    *,
    features: bool = True,
    fingerprints: bool = True,
    progress: Callable[[int], None] | None = None,
    roots: Sequence[Path] = (),
    remote: Remote | None = None,
    decoding: Decoding | None = None,
) -> AudioPass:
    """Decode each file that ``(track_id, url)`` pairs link to once: features from a
    30 s window at 22.05 kHz (:func:`window`), landmark hashes from the whole track at
    8 kHz. Unreadable audio is recorded in ``errors`` and skipped. The files are decoded
    in ``decoding.workers`` processes (default: one, in this process); the result,
    ordered as ``tracks``, is the same whatever the number.

    A ``file://`` link is opened only when its real path lies under ``roots`` or the
    packaged clips (:mod:`models.io.localaudio`); any other is counted in
    ``untrusted``, never opened: the catalog is data, and anyone who could add a track
    could otherwise have training read any file on the machine. An http(s) link is
    fetched as :mod:`batch.remote_audio` allows (its first
    ``ENCORE_AUDIO_REMOTE_SECONDS`` are decoded); without ``remote`` it is refused."""
    out = AudioPass()
    decoding = decoding or Decoding()
    trusted = trusted_roots(roots)
    web: dict[str, list[str]] = {}
    local: dict[Path, list[str]] = {}
    for track_id, url in tracks:
        if is_web(url):
            web.setdefault(url, []).append(track_id)
            continue
        path = trusted_path(url, trusted)
        if path is not None:
            local.setdefault(path, []).append(track_id)
            continue
        if url[:7].lower() == "file://":
            out.untrusted += 1
        else:
            out.errors[track_id] = "not a file:// or http(s) link"
        if progress is not None:
            progress(1)
    outcomes: Iterator[tuple[str, Fetched]] = (
        ((url, Fetched("refused", reason="remote: no fetch settings given")) for url in web)
        if remote is None
        else fetch_each(list(web), remote)
    )
    seconds = remote.settings.remote_seconds if remote is not None else None

    def jobs() -> Iterator[_Job]:
        """Local files, then remote ones as they arrive (a link that gave none is recorded)."""
        for path, ids in local.items():
            yield _Job(ids, path, features, fingerprints, None, decoding.crop)
        for url, got in outcomes:
            ids = web[url]
            setattr(out, got.outcome, getattr(out, got.outcome) + len(ids))
            if got.path is not None:
                yield _Job(
                    ids, got.path, features, fingerprints, seconds, decoding.crop, "remote: "
                )
                continue
            out.errors.update(dict.fromkeys(ids, got.reason))
            if progress is not None:
                progress(len(ids))

    durations = []
    for job, got in _decode_all(jobs(), decoding.workers):
        durations.append(got.seconds)
        if got.error:
            out.errors.update(dict.fromkeys(job.ids, job.prefix + got.error))
        if got.vector is not None:
            out.features.update(dict.fromkeys(job.ids, got.vector))
        if got.hashes is not None:
            out.hashes.update(dict.fromkeys(job.ids, got.hashes))
        if progress is not None:
            progress(len(job.ids))
    out.seconds = math.fsum(durations)  # exact: the same total in any completion order
    rank = {t: i for i, (t, _) in enumerate(tracks)}
    out.features = _ranked(out.features, rank)
    out.hashes = _ranked(out.hashes, rank)
    out.errors = _ranked(out.errors, rank)
    return out


def _ranked(found: dict[str, _T], rank: dict[str, int]) -> dict[str, _T]:
    """``found`` in the order of the tracks, not of the workers' completions."""
    return dict(sorted(found.items(), key=lambda kv: rank[kv[0]]))


@dataclass(frozen=True)
class _Job:
    """One file to decode, for every track that links to it."""

    ids: list[str]
    path: Path
    features: bool
    fingerprints: bool
    max_seconds: float | None
    crop: Crop
    prefix: str = ""


@dataclass(frozen=True)
class _Decoded:
    """What one file gave (small: a vector and hashes travel back, never the audio)."""

    seconds: float = 0.0
    vector: np.ndarray | None = None
    hashes: tuple[np.ndarray, np.ndarray] | None = None
    error: str = ""


def _decode_all(jobs: Iterable[_Job], workers: int) -> Iterator[tuple[_Job, _Decoded]]:
    """Each job with what it gave, in completion order. One worker decodes here, with
    one native thread; more run in a process pool (forkserver where the platform has
    it, so each worker forks from a server that has imported librosa already; never
    plain fork: the caller has threads, such as the remote fetcher), with at most two
    files per worker in flight, so a long catalog never queues up at once."""
    if workers <= 1:
        with one_thread():
            for job in jobs:
                yield job, _decode(job)
        return
    with ProcessPoolExecutor(workers, mp_context=_context(), initializer=worker_init) as pool:
        pending: dict[Future[_Decoded], _Job] = {}
        for job in jobs:
            pending[pool.submit(_decode, job)] = job
            if len(pending) >= 2 * workers:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                yield from ((pending.pop(f), f.result()) for f in done)
        for f in list(pending):
            yield pending.pop(f), f.result()


def _context() -> BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _decode(job: _Job) -> _Decoded:
    """Decode one file once into its features and hashes (in a worker); a failure is a value."""
    import librosa

    from models import fingerprint

    try:
        if not job.path.is_file():
            raise FileNotFoundError("no audio file at the link")
        if job.features:
            y = load(job.path, SAMPLE_RATE, job.max_seconds)
            vector = extract(window(y, job.crop))
            hashes = None
            if job.fingerprints:
                y8 = librosa.resample(
                    y, orig_sr=SAMPLE_RATE, target_sr=fingerprint.SAMPLE_RATE, res_type="soxr_hq"
                )
                hashes = fingerprint.hashes(y8)
            return _Decoded(y.size / SAMPLE_RATE, vector, hashes)
        if job.fingerprints:
            y8 = load(job.path, fingerprint.SAMPLE_RATE, job.max_seconds)
            return _Decoded(y8.size / fingerprint.SAMPLE_RATE, hashes=fingerprint.hashes(y8))
        return _Decoded()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "no audio"
        return _Decoded(error=f"{type(exc).__name__}: {exc}")
