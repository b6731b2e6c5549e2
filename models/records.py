"""Stored records: how each value is laid out in Redis, in one place.

Writers (the pure planners of :mod:`models.apply`, the stream worker) and
readers (the API, the prober, tools) encode and decode every record here, next
to each other, so a layout is decided once. The keys are in :mod:`models.keys`.

=====================  =======  ================================================
key                    type     codec
=====================  =======  ================================================
``Keys.user``          string   :func:`encode_user` / :func:`decode_user`
``Keys.track``         hash     :func:`encode_track` / :func:`decode_track`
``Keys.link``          hash     :func:`encode_link` / :func:`decode_link`
``Keys.link_status``   hash     track -> :func:`link_status_value` /
                                :func:`decode_link_status`
``lag_key``            hash     ``topic:partition`` -> :func:`encode_lag` /
                                :func:`decode_lag`
``Keys.offset``        string   the applied offset as decimal text (the store's
                                ``get_int`` and the atomic commit)
=====================  =======  ================================================

A listener's state is one Redis string in a compact binary form. One listener
with 20 events and a 64-d taste vector takes about 500 bytes, of which 256 are
the vector; the JSON hash it replaces took about 1,200.

User state layout (version 2, little-endian; ``v`` an unsigned LEB128 varint, ``z`` a
zigzag varint, ``s`` a varint length then UTF-8 bytes)::

    B   version (2; version 1 differs only in the model, always ``s``)
    v   n (events folded)          v  last_ms          z  vec_t - last_ms
    m   model (item-space version the vector is in): v 0 then v its time in
        microseconds when it is an artifact version name, else v length + 1
        and its UTF-8 bytes
    B   session present (0/1), then v last_ms - last, v last - start,
        v plays, v skips, v streak
    v   m (history entries), then, when m > 0:
        s   track ids joined by NUL (ids never hold control characters)
        B   time width w; w in 1..8: m unsigned w-byte gaps, newest first
            (last_ms - t[m-1], t[m-1] - t[m-2], ...); w = 0: m signed 8-byte times
        B   weight palette size p (0: no palette); p > 0: p zigzag varints of
            round(weight * 10,000) and m codes (type << 5 | palette index);
            p = 0: m type bytes and m little-endian float64 weights
    3x  liked, disliked tracks, blocked artists (by track): v count, s NUL-joined
        tracks, count zigzag varints of last_ms - t
    ... the taste vector, float32, to the end (absent: no vector)

The bytes depend on the state only (dict order included), so live and replayed
state stay byte-equal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from models.events import LinkStatus
from models.history import TYPES, History
from models.linkhealth import LinkHealth
from models.serving import CatalogTrack
from models.state import UserState

VERSION = 2
_PALETTE_MAX = 32  # 5 bits of the code byte
_SCALE = 10_000  # history weights are rounded to 4 decimals
_SESSION_KEYS = ("start", "last", "plays", "skips", "streak")


class RecordError(ValueError):
    """Stored bytes that are not a valid record of this version."""


# -- varints -------------------------------------------------------------------


def _uv(out: bytearray, v: int) -> None:
    if 0 <= v < 0x80:
        out.append(v)
        return
    if v < 0:
        raise RecordError(f"negative value {v} where an unsigned one belongs")
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _zz(out: bytearray, v: int) -> None:
    _uv(out, (v << 1) if v >= 0 else ((-v << 1) - 1))


def _text(out: bytearray, s: str) -> None:
    raw = s.encode()
    _uv(out, len(raw))
    out += raw


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def uv(self) -> int:
        buf, pos = self.buf, self.pos
        shift = value = 0
        while True:
            if pos >= len(buf):
                raise RecordError("record ends inside a number")
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                return value
            shift += 7
            if shift > 70:
                raise RecordError("number too long")

    def zz(self) -> int:
        v = self.uv()
        return (v >> 1) if not v & 1 else -((v + 1) >> 1)

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise RecordError("record ends early")
        self.pos += 1
        return self.buf[self.pos - 1]

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise RecordError("record ends early")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def text(self) -> str:
        return self.take(self.uv()).decode()


# -- user state ------------------------------------------------------------------


def _tracks(out: bytearray, tracks: list[str]) -> None:
    _text(out, "\x00".join(tracks))


_VERSION_NAME = re.compile(r"\d{8}T\d{12}Z")  # models.io.artifacts.new_version


@lru_cache(maxsize=64)
def _version_us(model: str) -> int | None:
    """An artifact version name (UTC time to the microsecond) as microseconds since
    1970, when it is one and prints back the same; else None."""
    if not _VERSION_NAME.fullmatch(model):
        return None
    try:
        when = datetime.strptime(model[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    us = int(when.timestamp()) * 1_000_000 + int(model[15:21])
    return us if _version_name(us) == model else None


@lru_cache(maxsize=64)
def _version_name(us: int) -> str:
    when = datetime.fromtimestamp(us // 1_000_000, UTC)
    return when.strftime("%Y%m%dT%H%M%S") + f"{us % 1_000_000:06d}Z"


def _model(out: bytearray, model: str) -> None:
    """The item-space version: 0 and its time in microseconds when it is a version name
    (8 bytes instead of 23), else its length + 1 and its text."""
    us = _version_us(model)
    if us is None:
        raw = model.encode()
        _uv(out, len(raw) + 1)
        out += raw
    else:
        out.append(0)
        _uv(out, us)


def _read_model(r: _Reader) -> str:
    n = r.uv()
    return _version_name(r.uv()) if n == 0 else r.take(n - 1).decode()


def _read_tracks(r: _Reader, m: int) -> list[str]:
    joined = r.text()
    tracks = joined.split("\x00") if m else []
    if len(tracks) != m:
        raise RecordError(f"{len(tracks)} track ids where {m} belong")
    return tracks


def _history(out: bytearray, hist: History, last_ms: int) -> None:
    """The history columns in a fixed number of array operations (see the layout)."""
    m = len(hist)
    _uv(out, m)
    if not m:
        return
    _tracks(out, hist.tracks)
    times, kinds, weights = hist.columns()
    gaps = np.empty(m, dtype=np.int64)
    gaps[0] = last_ms - times[-1]
    gaps[1:] = np.diff(times)[::-1]
    low, high = int(gaps.min()), int(gaps.max())
    width = 0 if low < 0 else max(1, (high.bit_length() + 7) // 8)
    out.append(width)
    if width:
        out += gaps.astype("<u8").view(np.uint8).reshape(m, 8)[:, :width].tobytes()
    else:
        out += times.astype("<i8").tobytes()
    palette = _palette(hist.weights)
    if palette is not None:
        scaled, index = palette
        out.append(len(scaled))
        for k in scaled:
            _zz(out, k)
        places = np.frombuffer(bytes(map(index.__getitem__, hist.weights)), dtype=np.uint8)
        out += ((kinds << 5) | places).tobytes()
    else:
        out.append(0)
        out += kinds.tobytes()
        out += weights.astype("<f8").tobytes()


def _palette(weights: Sequence[float]) -> tuple[list[int], dict[float, int]] | None:
    """The distinct weights in order of first appearance as ``round(w * 10,000)`` and each
    weight's place among them, or None when there are more than the palette holds or one
    does not read back exactly (off the 4-decimal grid, or -0.0, which reads back as 0.0)."""
    distinct = list(dict.fromkeys(weights))  # 0.0 and -0.0 are one key: checked below
    if len(distinct) > _PALETTE_MAX:
        return None
    scaled = [round(w * _SCALE) if -1e9 < w < 1e9 else 0 for w in distinct]
    if any(k / _SCALE != w for k, w in zip(scaled, distinct, strict=True)):
        return None
    if 0.0 in distinct and any(math.copysign(1.0, w) < 0 for w in weights if not w):
        return None
    return scaled, {w: i for i, w in enumerate(distinct)}


def _read_history(r: _Reader, last_ms: int) -> History:
    m = r.uv()
    if not m:
        return History()
    tracks = _read_tracks(r, m)
    width = r.byte()
    if width > 8:
        raise RecordError(f"time width {width}")
    if width:
        raw = np.frombuffer(r.take(m * width), dtype=np.uint8).reshape(m, width)
        wide = np.zeros((m, 8), dtype=np.uint8)
        wide[:, :width] = raw
        gaps = wide.view("<u8").ravel().astype(np.int64)
        times = (last_ms - np.cumsum(gaps))[::-1]
    else:
        times = np.frombuffer(r.take(m * 8), dtype="<i8")
    p = r.byte()
    if p:
        palette = np.array([r.zz() for _ in range(p)], dtype=np.float64) / _SCALE
        codes = np.frombuffer(r.take(m), dtype=np.uint8)
        kinds, index = codes >> 5, codes & 31
        if int(kinds.max()) >= len(TYPES) or int(index.max()) >= p:
            raise RecordError("history code out of range")
        weights = palette[index]
    else:
        kinds = np.frombuffer(r.take(m), dtype=np.uint8)
        if int(kinds.max()) >= len(TYPES):
            raise RecordError("history type out of range")
        weights = np.frombuffer(r.take(m * 8), dtype="<f8")
    return History.from_arrays(tracks, times, kinds, weights)


def _times(out: bytearray, d: dict[str, int], last_ms: int) -> None:
    _uv(out, len(d))
    if not d:
        return
    _tracks(out, list(d))
    for t in d.values():
        _zz(out, last_ms - int(t))


def _read_times(r: _Reader, last_ms: int) -> dict[str, int]:
    n = r.uv()
    if not n:
        return {}
    tracks = _read_tracks(r, n)
    return {tr: last_ms - r.zz() for tr in tracks}


def encode_user(state: UserState) -> bytes:
    """The stored form of a listener's state."""
    out = bytearray([VERSION])
    last = int(state.last_ms)
    _uv(out, state.n)
    _uv(out, last)
    _zz(out, int(state.vec_t) - last)
    _model(out, state.model)
    s = state.session
    if s:
        out.append(1)
        _uv(out, last - s["last"])
        _uv(out, s["last"] - s["start"])
        _uv(out, s["plays"])
        _uv(out, s["skips"])
        _uv(out, s["streak"])
    else:
        out.append(0)
    _history(out, state.hist, last)
    _times(out, state.liked, last)
    _times(out, state.neg_tracks, last)
    _times(out, state.neg_artist_of, last)
    if state.vec is not None:
        out += np.asarray(state.vec, dtype="<f4").tobytes()
    return bytes(out)


def decode_user(raw: bytes | None) -> UserState:
    """Inverse of :func:`encode_user`; nothing stored is a new listener."""
    if not raw:
        return UserState()
    r = _Reader(raw)
    version = r.byte()
    if version not in (1, VERSION):
        raise RecordError(f"user state version {version}, this code reads 1 and {VERSION}")
    n = r.uv()
    last = r.uv()
    vec_t = last + r.zz()
    model = r.text() if version == 1 else _read_model(r)
    session: dict[str, int] = {}
    if r.byte():
        s_last = last - r.uv()
        start = s_last - r.uv()
        session = dict(zip(_SESSION_KEYS, (start, s_last, r.uv(), r.uv(), r.uv()), strict=True))
    hist = _read_history(r, last)
    liked = _read_times(r, last)
    neg_tracks = _read_times(r, last)
    neg_artist_of = _read_times(r, last)
    rest = len(raw) - r.pos
    if rest % 4:
        raise RecordError(f"taste vector of {rest} bytes")
    vec = np.frombuffer(raw, dtype="<f4", offset=r.pos).copy() if rest else None
    return UserState(
        vec=vec,
        vec_t=vec_t,
        model=model,
        hist=hist,
        session=session,
        neg_tracks=neg_tracks,
        neg_artist_of=neg_artist_of,
        liked=liked,
        n=n,
        last_ms=last,
    )


# -- catalog track ---------------------------------------------------------------

TRACK_FIELDS = ("meta", "text", "cf", "content_model", "valence", "arousal", "updated_ms")


def encode_track(
    doc: dict[str, Any],
    updated_ms: int,
    *,
    model: str = "",
    text: np.ndarray | None = None,
    cf: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    valence: float | None = None,
    arousal: float | None = None,
) -> dict[str, Any]:
    """Hash fields of a catalog track: its metadata (JSON), the time of the event that
    set it, and its content vectors (float32 bytes; empty when absent)."""
    fields: dict[str, Any] = {
        "meta": orjson.dumps(doc),
        "updated_ms": updated_ms,
        "content_model": model,
    }
    for name, vec in (("text", text), ("cf", cf), ("audio", audio)):
        fields[name] = b"" if vec is None else np.asarray(vec, dtype="<f4").tobytes()
    fields["valence"] = "" if valence is None else f"{valence:.4f}"
    fields["arousal"] = "" if arousal is None else f"{arousal:.4f}"
    return fields


def decode_track(track_id: str, values: Sequence[bytes | None]) -> CatalogTrack | None:
    """A catalog track from the values of :data:`TRACK_FIELDS` (HMGET order); None when
    the track has no metadata stored."""
    meta, text, cf, model, valence, arousal, updated = values
    if not meta:
        return None
    return CatalogTrack(
        track_id,
        orjson.loads(meta),
        np.frombuffer(text, dtype="<f4") if text else None,
        np.frombuffer(cf, dtype="<f4") if cf else None,
        model.decode() if model else "",
        float(valence) if valence else None,
        float(arousal) if arousal else None,
        int(updated or 0),
    )


def decode_updated_ms(value: bytes | None) -> int | None:
    """The ``updated_ms`` field of a catalog track (None: no metadata stored yet)."""
    return int(value) if value else None


# -- link health -------------------------------------------------------------------

_LINK_INTS = frozenset(
    {"checks", "failures", "streak", "last_checked_ms", "last_ok_ms", "last_failure_ms"}
    | {"changed_ms"}
)


def encode_link(state: LinkHealth) -> dict[str, str]:
    """Hash fields of a link-health state (absent values as empty strings)."""
    return {
        name: "" if (v := getattr(state, name)) is None else str(v)
        for name in LinkHealth.__dataclass_fields__
    }


def decode_link(fields: dict[bytes, bytes]) -> LinkHealth:
    """Inverse of :func:`encode_link`; an empty hash is UNKNOWN."""
    if not fields:
        return LinkHealth()
    raw = {k.decode(): v.decode() for k, v in fields.items()}
    values: dict[str, Any] = {}
    for name in LinkHealth.__dataclass_fields__:
        v = raw.get(name, "")
        if name in _LINK_INTS:
            values[name] = int(v or 0)
        elif name == "http_code":
            values[name] = int(v) if v else None
        elif name == "status":
            values[name] = v or LinkStatus.UNKNOWN.value
        else:
            values[name] = v or None
    return LinkHealth(**values)


def link_status_value(state: LinkHealth) -> str:
    """A track's entry in its partition's link-status hash."""
    return state.status


def decode_link_status(value: bytes | None) -> str:
    """Inverse of :func:`link_status_value`; a track never checked is ``unknown``."""
    return value.decode() if value else LinkStatus.UNKNOWN.value


# -- consumer lag ----------------------------------------------------------------------


def encode_lag(lag: int, at_ms: int) -> str:
    """A partition's lag as a worker reports it, with the time of the report."""
    return f"{lag}:{at_ms}"


def decode_lag(value: bytes) -> int:
    """The lag of a :func:`encode_lag` value."""
    return int(value.split(b":")[0])
