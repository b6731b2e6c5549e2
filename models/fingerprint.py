"""Landmark audio fingerprints: identify the exact catalog track from a 5-10 s excerpt.

Spectrogram peaks of 8 kHz mono audio are paired (anchor, target within about a
second); each pair hashes ``(f1, f2 - f1, dt)`` into 20 bits. A query's hashes
are looked up in a sorted array and every catalog track is scored by the votes
of its single most consistent time offset (query frame vs track frame, +-1
frame of jitter). The peak threshold is relative to the excerpt's own median,
so gain changes do not matter, and offset voting survives added noise.

Deciding whether the best track is a match needs two numbers: enough aligned
votes and a clear winner. A clip that is not in the catalog can still collect
a dozen votes against a very similar track (same tempo and key), but never a
three-fold lead over the runner-up; true 5 s excerpts at 10 dB SNR keep a lead
of 4.5 or more. Hence :func:`accept`: ``votes >= 10 and votes / (runner_up + 1) >= 3``.

Everything here is pure (numpy and scipy on arrays); decoding audio files is
the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

SAMPLE_RATE = 8_000
N_FFT = 512
HOP = 128
PEAK_NEIGHBOURHOOD = (21, 11)
"""(frequency bins, frames) a peak must be the maximum of."""
PEAKS_PER_SECOND = 30
FAN_OUT = 8
MAX_DT = 63
MAX_DF = 63
MIN_VOTES = 10
MIN_RATIO = 3.0


def _log_spectrogram(audio: np.ndarray) -> np.ndarray:
    _, _, z = signal.stft(
        audio, fs=SAMPLE_RATE, nperseg=N_FFT, noverlap=N_FFT - HOP, boundary=None, padded=False
    )
    return np.asarray(np.log(np.abs(z) + 1e-6), dtype=np.float64)


def peaks(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, bins) of the strongest local spectral maxima, in time order."""
    y = np.asarray(audio, dtype=np.float32)
    if y.size < N_FFT:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s = _log_spectrogram(y)
    s[:3] = s.min()  # DC and rumble carry no identity
    local_max = ndimage.maximum_filter(s, size=PEAK_NEIGHBOURHOOD, mode="constant", cval=-np.inf)
    f, t = np.nonzero((s == local_max) & (s > np.median(s) + 2.0))
    keep = int(PEAKS_PER_SECOND * y.size / SAMPLE_RATE) + 1
    strongest = np.argsort(-s[f, t], kind="stable")[:keep]
    f, t = f[strongest], t[strongest]
    order = np.lexsort((f, t))
    return t[order].astype(np.int64), f[order].astype(np.int64)


def hashes(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hash uint32, anchor frame int32) of every landmark pair of 8 kHz mono audio."""
    t, f = peaks(audio)
    out_h: list[np.ndarray] = []
    out_t: list[np.ndarray] = []
    for i in range(t.size):
        tt = t[i + 1 : i + 1 + 4 * FAN_OUT]
        ff = f[i + 1 : i + 1 + 4 * FAN_OUT]
        ok = (tt - t[i] >= 1) & (tt - t[i] <= MAX_DT) & (np.abs(ff - f[i]) <= MAX_DF)
        j = i + 1 + np.flatnonzero(ok)[:FAN_OUT]
        if j.size:
            df = (f[j] - f[i] + MAX_DF).astype(np.uint32)
            dt = (t[j] - t[i]).astype(np.uint32)
            out_h.append((np.uint32(f[i]) << np.uint32(13)) | (df << np.uint32(6)) | dt)
            out_t.append(np.full(j.size, t[i], np.int32))
    if not out_h:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    return np.concatenate(out_h).astype(np.uint32), np.concatenate(out_t)


@dataclass(frozen=True)
class Match:
    """The best catalog track for an excerpt and whether it passes :func:`accept`."""

    track: int
    votes: int
    runner_up: int
    accepted: bool


@dataclass(frozen=True)
class WindowedMatch:
    """The best catalog track for a recording of any length, by a vote of its windows.

    ``votes`` and ``runner_up`` are the aligned landmark votes of the winner's best
    window and of that window's runner-up; ``windows_won`` is how many windows
    accepted the winner, of ``windows``, and ``windows_runner_up`` the most any
    other track won.
    """

    track: int
    votes: int
    runner_up: int
    accepted: bool
    windows: int
    windows_won: int
    windows_runner_up: int


WINDOW_S = 10.0
"""Length of the windows a long recording is matched in."""
HOP_S = 5.0
"""Step between window starts (windows overlap by half)."""


def accept(
    votes: int, runner_up: int, min_votes: int = MIN_VOTES, ratio: float = MIN_RATIO
) -> bool:
    """Enough aligned votes and a clear lead over the next track."""
    return votes >= min_votes and votes / (runner_up + 1.0) >= ratio


@dataclass(frozen=True)
class LandmarkIndex:
    """Sorted hash table: ``hashes`` ascending, with the track row and frame of each."""

    hashes: np.ndarray
    tracks: np.ndarray
    frames: np.ndarray
    n_tracks: int

    @classmethod
    def build(cls, clips: list[np.ndarray]) -> LandmarkIndex:
        """Index 8 kHz mono clips; track ``i`` is ``clips[i]``."""
        return cls.from_hashes([hashes(clip) for clip in clips])

    @classmethod
    def from_hashes(cls, parts: list[tuple[np.ndarray, np.ndarray]]) -> LandmarkIndex:
        """Index precomputed :func:`hashes` results; track ``i`` is ``parts[i]``."""
        hs = [np.asarray(h, dtype=np.uint32) for h, _ in parts]
        fs = [np.asarray(t, dtype=np.int32) for _, t in parts]
        ts = [np.full(h.size, i, np.int32) for i, h in enumerate(hs)]
        h = np.concatenate(hs) if hs else np.zeros(0, np.uint32)
        order = np.argsort(h, kind="stable")
        tracks = np.concatenate(ts) if ts else np.zeros(0, np.int32)
        frames = np.concatenate(fs) if fs else np.zeros(0, np.int32)
        return cls(h[order], tracks[order], frames[order], len(parts))

    def query(
        self, audio: np.ndarray, min_votes: int = MIN_VOTES, ratio: float = MIN_RATIO
    ) -> Match | None:
        """The best track for an 8 kHz mono excerpt, or None when no hash matches."""
        qh, qt = hashes(audio)
        lo = np.searchsorted(self.hashes, qh, "left")
        hi = np.searchsorted(self.hashes, qh, "right")
        n = hi - lo
        total = int(n.sum())
        if total == 0 or self.n_tracks == 0:
            return None
        starts = np.repeat(lo - np.cumsum(np.r_[0, n[:-1]]), n) + np.arange(total)
        offset = self.frames[starts].astype(np.int64) - np.repeat(qt, n).astype(np.int64)
        key = self.tracks[starts].astype(np.int64) * (1 << 22) + (offset + (1 << 21))
        keys, counts = np.unique(key, return_counts=True)
        votes = counts.copy()
        for d in (-1, 1):  # an offset bin also collects its neighbours' votes (jitter)
            p = np.searchsorted(keys, keys + d)
            ok = (p < keys.size) & (keys[np.minimum(p, keys.size - 1)] == keys + d)
            votes[ok] += counts[p[ok]]
        best = np.zeros(self.n_tracks, np.int64)
        np.maximum.at(best, (keys >> 22).astype(np.int64), votes)
        order = np.argsort(-best, kind="stable")
        top = int(best[order[0]])
        second = int(best[order[1]]) if self.n_tracks > 1 else 0
        return Match(int(order[0]), top, second, accept(top, second, min_votes, ratio))


def query_windows(
    index: LandmarkIndex,
    audio: np.ndarray,
    min_votes: int = MIN_VOTES,
    ratio: float = MIN_RATIO,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
) -> WindowedMatch | None:
    """Match a recording of any length: each window (``window_s``, every ``hop_s``) is
    matched on its own (:meth:`LandmarkIndex.query`), then the windows vote.

    A recording no longer than one window is one query, as before. For a longer one
    the track most windows accept wins (most aligned votes in one window on a tie),
    and it is accepted when at least two windows accept it (one when there are only
    two windows) and ``ratio`` times as many as any other track. A whole song, or a
    song inside a longer mix, thus counts by how much of it matched, not by one lucky
    stretch; memory and time per window stay those of a short clip.
    """
    win = int(window_s * SAMPLE_RATE)
    hop = int(hop_s * SAMPLE_RATE)
    if audio.size <= win:
        m = index.query(audio, min_votes, ratio)
        if m is None:
            return None
        return WindowedMatch(m.track, m.votes, m.runner_up, m.accepted, 1, int(m.accepted), 0)
    matches = [
        index.query(audio[s : s + win], min_votes, ratio)
        for s in range(0, audio.size - win + hop, hop)
    ]
    found = [m for m in matches if m is not None]
    if not found:
        return None
    won: dict[int, int] = {}
    best: dict[int, Match] = {}
    for m in found:
        if m.track not in best or m.votes > best[m.track].votes:
            best[m.track] = m
        if m.accepted:
            won[m.track] = won.get(m.track, 0) + 1
    ranked = sorted(best, key=lambda t: (-won.get(t, 0), -best[t].votes, t))
    top = ranked[0]
    wins = won.get(top, 0)
    others = max((won.get(t, 0) for t in ranked[1:]), default=0)
    need = 1 if len(matches) <= 2 else 2
    ok = wins >= need and wins >= ratio * others
    return WindowedMatch(top, best[top].votes, best[top].runner_up, ok, len(matches), wins, others)
