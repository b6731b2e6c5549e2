"""Identify: which catalog track is this recording, and what follows from it.

The upload (any format libsndfile reads: WAV, FLAC, Ogg/Opus, MP3; a 5-10 s clip
or a whole song up to ``ENCORE_API_IDENTIFY_MAX_SECONDS``) is mixed to mono and
resampled to the fingerprint rate, then matched against the published landmark
index (:mod:`models.fingerprint`) in windows that vote (:func:`query_windows`).
A match must pass the acceptance rule (enough aligned votes and a clear lead
over the runner-up, per window and across windows); otherwise the answer says
no exact match was found and offers the catalog tracks that sound most like the
recording (:mod:`api.soundalike`), or, when the served content has no audio
space, those sharing most landmarks with it, and their neighbours.

Uploads are open to anyone by default and compress well (minutes of 8-channel
silence fit in a few KB of FLAC), so the decoded size is never trusted to the
upload size. The header's sample rate, channel count and length are checked
before anything is decoded, then the audio is read in blocks, each mixed to mono
at once into a chunk of ``CHUNK_SECONDS`` at the file's rate, and each full
chunk is resampled into one 8 kHz buffer of ``max_seconds``; a file that yields
more than that is refused mid-stream whatever its header said. Per request the
decode holds at most :meth:`ClipLimits.decode_bytes` of arrays: the chunk, one
block of all channels, the 8 kHz buffer and one resampled chunk (about 28.7 MB
at the defaults and the highest rate: 600 s, 192 kHz, 8 channels); matching adds
one window's fingerprinting at a time (:meth:`ClipLimits.request_bytes`).
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from api.bundle import Bundle, Fingerprints
from api.query import similar_tracks
from api.recommend import Engine, artist_key, track_info
from api.soundalike import Wanted, brief, check_mood, sounds_like
from models import audiofeatures as af
from models import fingerprint as fp

log = logging.getLogger(__name__)

MIN_SECONDS = 3.0
MIN_RATE = 8_000
MAX_RATE = 192_000
BLOCK_FRAMES = 16_384
"""Frames decoded per read; only one block of all channels is held at a time."""
CHUNK_SECONDS = 10.0
"""Mono audio at the file's rate gathered before it is resampled to 8 kHz."""
HEAD_SECONDS = af.MAX_SECONDS
"""The start of the recording kept at the feature rate: what the catalog's audio
features describe (:mod:`models.audiofeatures`), for a clip that matches nothing."""
UNKNOWN_FRAMES = 2**62
"""libsndfile reports an unknown length (a stream without a total) as about 2**63."""


class ClipError(ValueError):
    """The upload is not a usable audio clip (the message says why)."""


@dataclass(frozen=True)
class ClipLimits:
    """What a clip may declare and decode to (``ENCORE_API_IDENTIFY_*``)."""

    max_seconds: float = 600.0
    max_channels: int = 8

    def max_frames(self, rate: int) -> int:
        return math.floor(self.max_seconds * rate)

    def decode_bytes(self, channels: int, rate: int) -> int:
        """The most memory :func:`decode` holds for a recording (numpy float32 arrays):
        one mono chunk at the file's rate, one block of all channels, the 8 kHz buffer
        and one resampled chunk, the head kept for audio features (the first
        :data:`HEAD_SECONDS` at 22.05 kHz) and one chunk resampled for it (float64 and
        float32), plus the resampler's working memory (under 1 MB)."""
        chunk = _chunk_frames(rate)
        out = self.max_frames(fp.SAMPLE_RATE) + _chunk_frames(fp.SAMPLE_RATE) + 2
        head = _head_frames() + 3 * _chunk_frames(af.SAMPLE_RATE)
        return 4 * (chunk + BLOCK_FRAMES * channels + out + head) + RESAMPLE_SLACK

    def request_bytes(self, channels: int, rate: int) -> int:
        """:meth:`decode_bytes` and the matching of one window (:data:`WINDOW_BYTES`), or,
        for a clip that matches nothing, once the decoded recording is freed, its head and
        the audio features computed from it (:data:`FEATURE_BYTES`), whichever is more."""
        matching = self.decode_bytes(channels, rate) + WINDOW_BYTES
        return max(matching, 4 * _head_frames() + FEATURE_BYTES)


RESAMPLE_SLACK = 1 << 20
"""Working memory of one ``resample_poly`` call on a chunk (measured: about 0.5 MB)."""
WINDOW_BYTES = 6 << 20
"""Working memory of fingerprinting one 10 s window (spectrogram, peaks, hashes;
measured: about 4 MB). Windows are matched one after another, so this does not grow
with the recording; the votes of a window against the index grow with the catalog."""


FEATURE_BYTES = 36 << 20
"""Working memory of the audio features of 30 s (:func:`models.audiofeatures.extract`:
the STFT, mel and chroma arrays; measured: about 33 MB)."""


def _chunk_frames(rate: int) -> int:
    return math.ceil(CHUNK_SECONDS * rate)


def _head_frames() -> int:
    return math.floor(HEAD_SECONDS * af.SAMPLE_RATE)


def _length_error(seconds: float, limits: ClipLimits, more: bool = False) -> ClipError:
    return ClipError(
        f"file: the clip is {'over ' if more else ''}{seconds:.1f} s; send {MIN_SECONDS:.0f}-"
        f"{limits.max_seconds:g} s (a 5-10 s clip or a whole song)"
    )


def check_header(frames: int, rate: int, channels: int, limits: ClipLimits) -> None:
    """Refuse a clip by what its header declares, before anything is decoded."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ClipError(f"file: sample rate {rate} Hz; send {MIN_RATE}-{MAX_RATE} Hz")
    if not 1 <= channels <= limits.max_channels:
        raise ClipError(f"file: {channels} audio channels; send at most {limits.max_channels}")
    if 0 < frames < UNKNOWN_FRAMES and frames > limits.max_frames(rate):
        raise _length_error(frames / rate, limits)


def read_audio(sound: Any, limits: ClipLimits) -> tuple[np.ndarray, float, np.ndarray]:
    """All frames of an open ``soundfile.SoundFile`` as mono audio at the fingerprint
    rate, the seconds read, and the first :data:`HEAD_SECONDS` at the audio-feature rate.

    Blocks of ``BLOCK_FRAMES`` frames of all channels are mixed to mono into a chunk
    of ``CHUNK_SECONDS`` at the file's rate; each full chunk (and the last part) is
    resampled into a preallocated 8 kHz buffer of ``limits.max_seconds``. Stops with
    :class:`ClipError` as soon as the file yields more than that, whatever its header
    said. Memory: :meth:`ClipLimits.decode_bytes`."""
    rate, channels = int(sound.samplerate), int(sound.channels)
    ratio = Fraction(fp.SAMPLE_RATE, rate).limit_denominator(1000)
    limit = limits.max_frames(rate)
    out = np.empty(
        limits.max_frames(fp.SAMPLE_RATE) + _chunk_frames(fp.SAMPLE_RATE) + 2, np.float32
    )
    to_head = Fraction(af.SAMPLE_RATE, rate).limit_denominator(1000)
    head = np.empty(_head_frames(), np.float32)
    chunk = np.empty(_chunk_frames(rate), np.float32)
    block = np.empty((BLOCK_FRAMES, channels), np.float32)
    total = filled = written = headed = 0

    def flush() -> None:
        nonlocal filled, written, headed
        if not filled:
            return
        if headed < head.size:
            part = chunk[:filled]
            if to_head != 1:
                part = resample_poly(part, to_head.numerator, to_head.denominator)
            take = min(part.size, head.size - headed)
            head[headed : headed + take] = part[:take]
            headed += take
        part = chunk[:filled]
        if ratio != 1:
            part = resample_poly(part, ratio.numerator, ratio.denominator).astype(np.float32)
        out[written : written + part.size] = part
        written += part.size
        filled = 0

    while True:
        got = sound.read(BLOCK_FRAMES, dtype="float32", always_2d=True, out=block)
        k = int(got.shape[0])
        if k == 0:
            flush()
            return out[:written], total / rate, head[:headed]
        if total + k > limit:
            raise _length_error(limits.max_seconds, limits, more=True)
        total += k
        done = 0
        while done < k:  # a block may straddle the chunk's end
            take = min(k - done, chunk.size - filled)
            np.mean(got[done : done + take], axis=1, out=chunk[filled : filled + take])
            filled += take
            done += take
            if filled == chunk.size:
                flush()


_UNKNOWN_FORMAT = ("Format not recognised", "File contains data in an unimplemented format")


def _unreadable(exc: BaseException) -> ClipError:
    """A fixed message for a clip the decoder refused, never the decoder's own text (it can
    name internals: allocation failures, its file objects)."""
    log.info("unreadable clip: %s: %s", type(exc).__name__, exc)
    reason = getattr(exc, "error_string", "")  # libsndfile's own short reason, if any
    known = isinstance(reason, str) and reason.startswith(_UNKNOWN_FORMAT)
    detail = "unknown or unsupported format" if known else "damaged or unsupported audio data"
    return ClipError(f"file: not a readable audio file ({detail}); send WAV, FLAC, Ogg or MP3")


def decode(data: bytes, limits: ClipLimits | None = None) -> tuple[np.ndarray, float, np.ndarray]:
    """Mono audio at the fingerprint rate, the clip's length in seconds, and its first
    :data:`HEAD_SECONDS` at the audio-feature rate.

    The header is checked first (:func:`check_header`), then the audio is decoded in
    blocks (:func:`read_audio`), so memory stays under :meth:`ClipLimits.decode_bytes`
    whatever the file declares or holds."""
    limits = limits or ClipLimits()
    try:
        import soundfile
    except ImportError as exc:
        raise ClipError("audio decoding needs the ml extra: pip install -e '.[ml]'") from exc
    try:
        sound = soundfile.SoundFile(io.BytesIO(data))
    except Exception as exc:
        raise _unreadable(exc) from exc
    with sound:
        rate = int(sound.samplerate)
        check_header(int(sound.frames), rate, int(sound.channels), limits)
        try:
            audio, seconds, head = read_audio(sound, limits)
        except ClipError:
            raise
        except Exception as exc:
            raise _unreadable(exc) from exc
    if seconds < MIN_SECONDS:
        raise _length_error(seconds, limits)
    return audio, seconds, head


def more_from_artist(bundle: Bundle, track: str, n: int) -> list[dict[str, Any]]:
    """Other tracks by the matched track's artist, most popular first."""
    content, collab = bundle.content, bundle.collab
    artist = artist_key(track_info(bundle, {}, track))
    if content is None or artist is None:
        return []
    rows = [
        i
        for i, item in enumerate(content.items)
        if artist_key(item) == artist and content.ids[i] != track
    ]

    def popularity(i: int) -> float:
        if collab is None or content.ids[i] not in collab.row:
            return 0.0
        return float(collab.popularity[collab.row[content.ids[i]]])

    rows.sort(key=lambda i: -popularity(i))
    return [brief(bundle, content.ids[i]) for i in rows[:n]]


async def identify(
    engine: Engine,
    bundle: Bundle,
    prints: Fingerprints | None,
    data: bytes,
    n: int = 10,
    limits: ClipLimits | None = None,
    wanted: Wanted | None = None,
) -> dict[str, Any]:
    """``POST /v1/identify``: an exact match by fingerprints; otherwise the tracks that
    sound most like the clip (its audio features in the catalog's audio space, with the
    ``wanted`` filters), or, without an audio space, those sharing most landmarks."""
    wanted = wanted or Wanted()
    check_mood(bundle.content, wanted.mood)
    if prints is None:
        return {
            "matched": False,
            "match": None,
            "message": "no fingerprint index is published yet",
            "more_from_artist": [],
            "fans_also_like": [],
            "similar": [],
            "similar_by": None,
        }
    audio, seconds, head = await engine.pool.run(decode, data, limits or ClipLimits())
    found = await engine.pool.run(
        fp.query_windows, prints.index, audio, prints.min_votes, prints.min_ratio
    )
    base = {"clip_seconds": round(seconds, 2), "fingerprint_version": prints.version}
    if found is not None and found.accepted:
        track = prints.track_ids[found.track]
        fans = await similar_tracks(engine, bundle, track, n, exclude_artist=True)
        return {
            **base,
            "matched": True,
            "match": {
                **brief(bundle, track),
                "votes": found.votes,
                "runner_up": found.runner_up,
                "confidence": round(1 - (found.runner_up + 1) / (found.votes + 1), 3),
                "windows": found.windows,
                "windows_matched": found.windows_won,
            },
            "message": "exact match",
            "more_from_artist": more_from_artist(bundle, track, n),
            "fans_also_like": (fans or {}).get("items", []),
            "similar": [],
            "similar_by": None,
        }
    del audio  # the decoded recording: the features below need only its head
    similar = await engine.pool.run(sounds_like, bundle, head, n, wanted)
    by = "audio" if similar is not None else None
    closest = prints.track_ids[found.track] if found is not None else None
    if similar is None and closest is not None:
        near = await similar_tracks(engine, bundle, closest, 4 * n)
        found_tracks = [brief(bundle, closest), *(near or {}).get("items", [])]
        content = bundle.content
        if content is not None:
            rows = np.array([content.row.get(t["track_id"], -1) for t in found_tracks])
            passes = np.ones(len(rows), bool)
            known = rows >= 0  # tracks only the catalog topic describes are not filtered
            passes[known] = wanted.mask(bundle, rows[known])
            found_tracks = [t for t, ok in zip(found_tracks, passes, strict=True) if ok]
        similar = found_tracks[:n]
        by = "landmarks"
    message = "no exact match in the catalog"
    if similar and by == "audio":
        message += "; these sound most like the clip"
    elif similar:
        message += "; these share the most acoustic landmarks with the clip"
    return {
        **base,
        "matched": False,
        "match": None,
        "message": message,
        "best_votes": found.votes if found else 0,
        "more_from_artist": [],
        "fans_also_like": [],
        "similar": similar or [],
        "similar_by": by if similar else None,
    }
