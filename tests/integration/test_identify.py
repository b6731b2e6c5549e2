"""``POST /v1/identify`` on real packaged music: a noisy, re-encoded 7 s excerpt finds its
track; a sibling clip that is not in the catalog gets "no exact match"; bad uploads get
a 422 that says why, and a small upload that would decode to hundreds of MB is refused
by its header, or stopped mid-stream, within a stated memory bound."""

from __future__ import annotations

import io
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import api.identify
from api.app import create_app
from api.identify import ClipError, ClipLimits, read_audio
from batch import audio, audio_sources
from batch.fingerprint import publish_fingerprints
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.settings import ApiSettings, ArtifactSettings, Settings

soundfile = pytest.importorskip("soundfile")
pytest.importorskip(
    "immich_memories_music",
    reason="packaged clips come with the data extra: pip install -e '.[data]'",
)

INDEXED = ("imm:calm_acoustic_1", "imm:energetic_acoustic_1", "imm:happy_electronic_1")
SIBLING = "imm:calm_acoustic_s522"  # same prompt, tempo and key as calm_acoustic_1
IMPUTED = "imm:calm_acoustic_s411"  # said to have no sound of its own: never offered


@pytest.fixture(scope="module")
def urls() -> dict[str, str]:
    return {c.track_id: c.track()["audio_url"] for c in audio_sources.clips()}


MOODS = {  # valence, arousal of each folder's clips, and the lexicon's words
    "calm": (0.4, -0.6),
    "energetic": (0.5, 0.8),
    "happy": (0.8, 0.4),
    "nostalgic": (-0.3, -0.3),
    "tender": (0.3, -0.4),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, urls: dict[str, str]) -> Path:
    result = audio.analyse([(t, urls[t]) for t in INDEXED], features=False)
    assert not result.errors
    path = tmp_path_factory.mktemp("artifacts")
    store = ArtifactStore(path)
    publish_fingerprints(store, result.hashes, data={"source": "test"})
    _publish_content(store, urls)
    return path


def _publish_content(store: ArtifactStore, urls: dict[str, str]) -> None:
    """A content artifact whose audio space is fitted on every packaged clip but the
    sibling (librosa features, the content job's reducer); years 2000 + row."""
    clips = [c for c in audio_sources.clips() if c.track_id != SIBLING]
    found = audio.analyse([(c.track_id, urls[c.track_id]) for c in clips], fingerprints=False)
    assert not found.errors
    ids = [c.track_id for c in clips]
    raw = np.stack([found.features[t] for t in ids])
    reducer = audio.Reducer().fit(raw)
    vectors = reducer.transform(raw)
    path = store.stage("content")
    items = [
        {**c.track(), "year": 2000 + i, "has_audio": c.track_id != IMPUTED}
        for i, c in enumerate(clips)
    ]
    save_json(path, "item_ids.json", ids)
    save_json(
        path, "items.json", [{k: v for k, v in it.items() if k != "track_id"} for it in items]
    )
    text = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    save_array(path, "text", text / np.linalg.norm(text, axis=1, keepdims=True))
    save_array(path, "mood", np.array([MOODS[c.mood] for c in clips], dtype=np.float32))
    save_array(path, "audio", vectors)
    save_array(path, "audio_mean", reducer.mean.astype(np.float32))
    save_array(path, "audio_std", reducer.std.astype(np.float32))
    save_array(path, "audio_components", reducer.components.astype(np.float32))
    save_json(path, "lexicon.json", {w: list(va) for w, va in MOODS.items()})
    store.publish("content", path, params={"cf_version": ""})


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = Settings(  # a 30 s limit: the limit tests stay small
        artifacts=ArtifactSettings(root=root), api=ApiSettings(identify_max_seconds=30.0)
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _clip(url: str, start: float, seconds: float, fmt: str, snr_db: float = 20.0) -> bytes:
    """An excerpt at the file's own rate, with noise, encoded as ``fmt``."""
    path = audio.path_of(url)
    assert path is not None
    y, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    part = y[int(start * rate) : int((start + seconds) * rate)]
    power = float(np.mean(part**2))
    noise = np.random.default_rng(1).normal(
        scale=np.sqrt(power / 10 ** (snr_db / 10)), size=part.shape
    )
    buf = io.BytesIO()
    soundfile.write(buf, (part + noise).astype(np.float32), rate, format=fmt)
    return buf.getvalue()


def _post(client: TestClient, data: bytes, name: str = "clip.wav") -> tuple[int, dict]:
    r = client.post("/v1/identify", files={"file": (name, data)})
    return r.status_code, r.json()


@pytest.mark.parametrize(("track", "fmt"), [(INDEXED[0], "WAV"), (INDEXED[2], "FLAC")])
def test_an_excerpt_is_matched_to_its_track(
    client: TestClient, urls: dict[str, str], track: str, fmt: str
) -> None:
    status, body = _post(client, _clip(urls[track], 10.0, 7.0, fmt))
    assert status == 200, body
    assert body["matched"] is True
    assert body["match"]["track_id"] == track
    assert body["match"]["votes"] >= 3 * (body["match"]["runner_up"] + 1)
    assert 0 < body["match"]["confidence"] <= 1
    assert body["clip_seconds"] == pytest.approx(7.0, abs=0.05)
    assert body["fingerprint_version"]


def test_a_track_outside_the_catalog_is_not_matched(
    client: TestClient, urls: dict[str, str]
) -> None:
    status, body = _post(client, _clip(urls[SIBLING], 8.0, 7.0, "WAV"))
    assert status == 200, body
    assert body["matched"] is False
    assert body["match"] is None
    assert body["message"].startswith("no exact match")


def test_an_unmatched_clip_gets_the_tracks_that_sound_most_like_it(
    client: TestClient, urls: dict[str, str]
) -> None:
    data = _clip(urls[SIBLING], 8.0, 7.0, "WAV")
    status, body = _post(client, data)
    assert status == 200, body
    assert body["matched"] is False
    assert body["similar_by"] == "audio"
    assert body["message"].endswith("these sound most like the clip")
    similar = body["similar"]
    assert len(similar) == 10
    assert all(0 < s["similarity"] <= 1 for s in similar)
    assert [s["similarity"] for s in similar] == sorted(
        (s["similarity"] for s in similar), reverse=True
    )
    # its twin (same prompt, tempo and key) sounds closest
    assert "imm:calm_acoustic_1" in [s["track_id"] for s in similar[:3]]
    r = client.post("/v1/identify?n=50", files={"file": ("clip.wav", data)})
    offered = [s["track_id"] for s in r.json()["similar"]]
    assert len(offered) == len(audio_sources.clips()) - 2  # all but the sibling, the imputed
    assert IMPUTED not in offered

    r = client.post(
        "/v1/identify?genres=electronic&mood=energetic&year_min=2005&n=50",
        files={"file": ("clip.wav", data)},
    )
    assert r.status_code == 200, r.text
    picked = r.json()["similar"]
    assert picked, "some energetic electronic clips are in the catalog"
    assert all(s["genre"] == "electronic" for s in picked)
    folder = {c.track_id: c.mood for c in audio_sources.clips()}
    assert {folder[s["track_id"]] for s in picked} <= {"energetic", "happy"}  # aroused, glad
    years = {
        c.track_id: 2000 + i
        for i, c in enumerate(c for c in audio_sources.clips() if c.track_id != SIBLING)
    }
    assert all(years[s["track_id"]] >= 2005 for s in picked)

    r = client.post("/v1/identify?mood=gloomy", files={"file": ("clip.wav", data)})
    assert r.status_code == 422
    assert "not a mood word of the catalog" in r.json()["detail"]
    r = client.post("/v1/identify?year_min=2010&year_max=2001", files={"file": ("clip.wav", data)})
    assert r.status_code == 422


def test_bad_uploads_say_what_is_wrong(client: TestClient, urls: dict[str, str]) -> None:
    status, body = _post(client, b"not audio at all")
    assert status == 422
    assert "not a readable audio file" in body["detail"]
    assert "object at 0x" not in body["detail"]
    status, body = _post(client, _clip(urls[INDEXED[1]], 0.0, 1.0, "WAV"))
    assert status == 422
    assert "1.0 s" in body["detail"]
    assert client.post("/v1/identify").status_code == 422  # no file part
    status, body = _post(client, b"")
    assert status == 422
    assert "empty" in body["detail"]


def _wav_header(fmt: int, channels: int, bits: int, n: int = 100) -> bytes:
    fields = struct.pack("<IHHIIHH", 16, fmt, channels, 44_100, 44_100 * 4, 4, bits)
    return b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + fields + b"data" + b"\0" * n


@pytest.mark.parametrize(
    "data",
    [
        b"not audio at all",
        _wav_header(3, 1, 13),  # libsndfile: "Unspecified internal error."
        b"\xff\xfb\xd4\x04" + b"\0" * 300,  # "File does not exist or is not a regular file"
        _wav_header(1, 0, 16),  # "Channel count is zero."
        b"OggS" + bytes(range(256)) * 2,
    ],
)
def test_an_unreadable_clip_gets_a_fixed_message_not_the_decoders(
    client: TestClient, data: bytes
) -> None:
    status, body = _post(client, data)
    assert status == 422
    assert body["detail"] in {
        "file: not a readable audio file (unknown or unsupported format); "
        "send WAV, FLAC, Ogg or MP3",
        "file: not a readable audio file (damaged or unsupported audio data); "
        "send WAV, FLAC, Ogg or MP3",
    }


def _silence(seconds: float, channels: int, rate: int, fmt: str = "FLAC") -> bytes:
    """Silence of the given shape: as FLAC it compresses about 4000-fold."""
    buf = io.BytesIO()
    soundfile.write(buf, np.zeros((int(seconds * rate), channels), np.float32), rate, format=fmt)
    return buf.getvalue()


def _peak_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the peak of traced allocations while it ran (numpy's included, every
    thread: the route decodes on a worker thread)."""
    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_compressed_long_multichannel_flac_is_refused_by_its_header(
    client: TestClient,
) -> None:
    # 2 min of 8-channel 48 kHz audio: about 46 KB uploaded, 184 MB as float32 samples
    data = _silence(120.0, 8, 48_000)
    assert len(data) < 100_000
    bound = ClipLimits(max_seconds=30.0).decode_bytes(8, 48_000)  # about 4.3 MB
    (status, body), peak = _peak_bytes(lambda: _post(client, data, "clip.flac"))
    assert status == 422, body
    assert "120.0 s" in body["detail"]
    assert "3-30 s" in body["detail"]
    assert peak < bound, f"the refused upload peaked at {peak / 1e6:.1f} MB"


def test_the_stream_stops_past_the_limit_whatever_the_header_says() -> None:
    # The header check is skipped (read_audio alone), as for a file whose declared length
    # is missing or wrong: decoding stops once more than max_seconds has been read.
    limits = ClipLimits(max_seconds=5.0)
    with soundfile.SoundFile(io.BytesIO(_silence(60.0, 8, 48_000))) as sound:

        def read() -> None:
            with pytest.raises(ClipError, match=r"over 5\.0 s; send 3-5 s"):
                read_audio(sound, limits)

        _, peak = _peak_bytes(read)
        assert sound.tell() <= 5 * 48_000 + api.identify.BLOCK_FRAMES
    assert peak <= limits.decode_bytes(8, 48_000), f"peaked at {peak / 1e6:.1f} MB"


def test_a_declared_too_long_mono_wav_is_refused_before_decoding(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []

    def spy(sound: Any, limits: ClipLimits) -> tuple[np.ndarray, float]:
        decoded.append(1)
        return read_audio(sound, limits)

    monkeypatch.setattr(api.identify, "read_audio", spy)
    status, body = _post(client, _silence(45.0, 1, 8_000, "WAV"))
    assert status == 422, body
    assert "45.0 s" in body["detail"]
    assert decoded == []
    status, body = _post(client, _silence(1.0, 1, 8_000, "WAV"))  # short: decoded, then refused
    assert status == 422
    assert "1.0 s" in body["detail"]
    assert decoded == [1]


@pytest.mark.parametrize(
    ("channels", "rate", "reason"),
    [
        (16, 8_000, "16 audio channels; send at most 8"),
        (1, 4_000, "sample rate 4000 Hz; send 8000-192000 Hz"),
        (1, 384_000, "sample rate 384000 Hz; send 8000-192000 Hz"),
    ],
)
def test_channels_and_sample_rate_are_checked_in_the_header(
    client: TestClient, channels: int, rate: int, reason: str
) -> None:
    status, body = _post(client, _silence(4.0, channels, rate, "WAV"))
    assert status == 422, body
    assert reason in body["detail"]
    assert "object at 0x" not in body["detail"]


def _excerpt(url: str, start: float, seconds: float | None = None) -> tuple[np.ndarray, int]:
    path = audio.path_of(url)
    assert path is not None
    y, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    end = None if seconds is None else int((start + seconds) * rate)
    return y[int(start * rate) : end], rate


def test_a_whole_song_inside_a_longer_recording_is_matched_by_its_windows(
    root: Path, urls: dict[str, str]
) -> None:
    # a non-catalog clip, then the whole catalog track, then another non-catalog clip:
    # 67 s of audio in one Ogg Vorbis file (a lossless one would pass the upload limit),
    # with noise at 20 dB
    before, rate = _excerpt(urls[SIBLING], 0.0, 20.0)
    song, _ = _excerpt(urls[INDEXED[1]], 0.0)
    after, _ = _excerpt(urls["imm:tender_acoustic_1"], 5.0, 15.0)
    y = np.concatenate([before, song, after])
    noise = np.random.default_rng(2).normal(scale=np.sqrt(np.mean(y**2) / 100), size=y.shape)
    buf = io.BytesIO()
    mixed = (y + noise).astype(np.float32)
    with soundfile.SoundFile(buf, "w", rate, mixed.shape[1], format="OGG") as out:
        for i in range(0, len(mixed), 8_192):  # in blocks: one large Vorbis write can crash
            out.write(mixed[i : i + 8_192])
    settings = Settings(artifacts=ArtifactSettings(root=root))  # the default limit: 600 s
    with TestClient(create_app(settings)) as whole:
        status, body = _post(whole, buf.getvalue(), "song.ogg")
    assert status == 200, body
    assert body["matched"] is True
    assert body["match"]["track_id"] == INDEXED[1]
    assert body["clip_seconds"] == pytest.approx(y.shape[0] / rate, abs=0.05)
    assert body["match"]["windows"] >= 10
    assert 2 <= body["match"]["windows_matched"] <= body["match"]["windows"]


def test_a_long_compressed_multichannel_recording_stays_within_the_memory_bound(
    root: Path,
) -> None:
    # 9 min of 8-channel 48 kHz silence: about 210 KB of FLAC, 830 MB as float32 samples.
    # Accepted (under the 600 s limit), decoded chunk by chunk, matched to nothing.
    data = _silence(540.0, 8, 48_000)
    assert len(data) < 1_000_000
    bound = ClipLimits().request_bytes(8, 48_000)  # decoding, then one window at a time
    settings = Settings(artifacts=ArtifactSettings(root=root))
    with TestClient(create_app(settings)) as whole:
        (status, body), peak = _peak_bytes(lambda: _post(whole, data, "long.flac"))
    assert status == 200, body
    assert body["matched"] is False
    assert body["clip_seconds"] == pytest.approx(540.0, abs=0.05)
    assert peak < bound, f"peaked at {peak / 1e6:.1f} MB over {bound / 1e6:.1f} MB"
