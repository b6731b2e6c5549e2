"""A listener's recent history as columns: track ids, times, event types, weights.

The history is what the stream fold touches most and what every state write
encodes, so it is kept as four parallel columns rather than a list of entries:
track ids in a list, and times (int64), event type codes (uint8) and weights
(float64) in :class:`array.array` buffers. Appending costs a few C calls, and
the stored form (:mod:`models.records`) is made from the buffers with numpy in a
fixed number of array operations, whatever the length: encoding a full history
of 200 entries costs about what encoding 8 did.

Entries are kept in (time, track) order, the newest last; iterating gives
``(track, time, type, weight)`` tuples of plain Python values.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

TYPES = ("play", "skip", "like", "unlike", "dislike")
TYPE_CODE = {t: i for i, t in enumerate(TYPES)}


class History:
    """Recent interactions in (time, track) order as parallel columns."""

    __slots__ = ("kinds", "times", "tracks", "weights")

    def __init__(
        self,
        tracks: list[str] | None = None,
        times: array[int] | None = None,
        kinds: array[int] | None = None,
        weights: array[float] | None = None,
    ) -> None:
        self.tracks: list[str] = tracks if tracks is not None else []
        self.times: array[int] = times if times is not None else array("q")
        self.kinds: array[int] = kinds if kinds is not None else array("B")
        self.weights: array[float] = weights if weights is not None else array("d")

    @classmethod
    def of(cls, entries: Iterable[Sequence[Any]]) -> History:
        """From ``(track, time, type, weight)`` entries, kept in the order given."""
        h = cls()
        for track, t, kind, w in entries:
            code = TYPE_CODE.get(kind)
            if code is None:
                raise ValueError(f"unknown event type {kind!r} in the history")
            h.tracks.append(track)
            h.times.append(t)
            h.kinds.append(code)
            h.weights.append(w)
        return h

    @classmethod
    def from_arrays(
        cls, tracks: list[str], times: np.ndarray, kinds: np.ndarray, weights: np.ndarray
    ) -> History:
        """From numpy columns (copied into the history's own buffers)."""
        t: array[int] = array("q")
        t.frombytes(np.ascontiguousarray(times, dtype=np.int64).tobytes())
        k: array[int] = array("B")
        k.frombytes(np.ascontiguousarray(kinds, dtype=np.uint8).tobytes())
        w: array[float] = array("d")
        w.frombytes(np.ascontiguousarray(weights, dtype=np.float64).tobytes())
        if not len(t) == len(k) == len(w) == len(tracks):
            raise ValueError("history columns of different lengths")
        return cls(tracks, t, k, w)

    def add(self, track: str, t: int, kind: int, w: float, limit: int) -> None:
        """Insert one entry in (time, track) order, then keep the newest ``limit``."""
        tracks, times = self.tracks, self.times
        n = len(tracks)
        if not n or times[n - 1] < t or (times[n - 1] == t and tracks[n - 1] <= track):
            tracks.append(track)  # the common case: events arrive in time order
            times.append(t)
            self.kinds.append(kind)
            self.weights.append(w)
        else:
            pos = n
            while pos > 0 and (times[pos - 1], tracks[pos - 1]) > (t, track):
                pos -= 1
            tracks.insert(pos, track)
            times.insert(pos, t)
            self.kinds.insert(pos, kind)
            self.weights.insert(pos, w)
        if n + 1 > limit:
            cut = n + 1 - limit
            del tracks[:cut], times[:cut], self.kinds[:cut], self.weights[:cut]

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Times, type codes and weights as numpy views of the buffers (read-only use)."""
        return (
            np.frombuffer(self.times, dtype=np.int64),
            np.frombuffer(self.kinds, dtype=np.uint8),
            np.frombuffer(self.weights, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.tracks)

    def __bool__(self) -> bool:
        return bool(self.tracks)

    def __getitem__(self, i: int) -> tuple[str, int, str, float]:
        return self.tracks[i], self.times[i], TYPES[self.kinds[i]], self.weights[i]

    def __iter__(self) -> Iterator[tuple[str, int, str, float]]:
        return zip(
            self.tracks, self.times, (TYPES[k] for k in self.kinds), self.weights, strict=True
        )

    def __reversed__(self) -> Iterator[tuple[str, int, str, float]]:
        return (self[i] for i in range(len(self.tracks) - 1, -1, -1))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return (
            self.tracks == other.tracks
            and self.times == other.times
            and self.kinds == other.kinds
            and self.weights.tobytes() == other.weights.tobytes()  # -0.0 differs from 0.0
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"History({list(self)!r})"
