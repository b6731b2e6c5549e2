"""Audio decoding in a process pool, and the feature window: on real packaged clips.

The clips are the ``immich-memories-music`` tracks of the ``data`` extra (29-33 s
each, so the middle 30 s differ from the first 30 s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batch import audio, audio_sources, content
from batch.threads import one_thread
from models.settings import AudioSettings

pytest.importorskip(
    "immich_memories_music",
    reason="packaged clips come with the data extra: pip install -e '.[data]'",
)

CLIPS = (
    "imm:calm_acoustic_1",
    "imm:energetic_electronic_2",
    "imm:happy_acoustic_2",
    "imm:nostalgic_acoustic_s522",
    "imm:tender_electronic_s411",
)
LONGEST = "imm:nostalgic_acoustic_s522"  # 32.7 s


def _urls() -> dict[str, str]:
    return {c.track_id: c.track()["audio_url"] for c in audio_sources.clips()}


def test_a_pool_gives_what_one_process_gives(tmp_path: Path) -> None:
    urls = _urls()
    (tmp_path / "broken.opus").write_bytes(b"not audio at all")
    tracks = [(t, urls[t]) for t in CLIPS]
    tracks += [
        ("same-file", urls[CLIPS[0]]),  # another track linking to a clip: one decode serves both
        ("broken", (tmp_path / "broken.opus").as_uri()),
        ("gone", (tmp_path / "gone.opus").as_uri()),
    ]
    done: list[int] = []
    one = audio.analyse(tracks, roots=[tmp_path], decoding=audio.Decoding(workers=1))
    two = audio.analyse(
        tracks, roots=[tmp_path], progress=done.append, decoding=audio.Decoding(workers=2)
    )

    assert sum(done) == len(tracks)
    assert list(one.features) == list(two.features) == [*CLIPS, "same-file"]
    for t in one.features:
        assert np.array_equal(one.features[t], two.features[t]), t
        assert all(np.array_equal(a, b) for a, b in zip(one.hashes[t], two.hashes[t], strict=True))
    assert one.features["same-file"] is one.features[CLIPS[0]]
    assert one.errors == two.errors
    assert list(one.errors) == ["broken", "gone"]
    assert one.errors["gone"] == "FileNotFoundError: no audio file at the link"
    assert one.seconds == two.seconds


def test_the_centre_crop_takes_the_middle_window_and_fingerprints_keep_it_all() -> None:
    track = [(LONGEST, _urls()[LONGEST])]
    start = audio.analyse(track)
    centre = audio.analyse(track, decoding=audio.Decoding(crop="centre"))

    y = audio.load(audio.path_of(track[0][1]) or "", audio.SAMPLE_RATE, None)
    n = int(audio.MAX_SECONDS * audio.SAMPLE_RATE)
    skip = (y.size - n) // 2
    assert skip > audio.SAMPLE_RATE  # the clip is over 32 s long
    assert np.array_equal(audio.window(y, "centre"), y[skip : skip + n])
    with one_thread():  # as analyse extracts: BLAS sums in another order with more threads
        assert np.array_equal(centre.features[LONGEST], audio.extract(y[skip : skip + n]))
        assert np.array_equal(start.features[LONGEST], audio.extract(y[:n]))
    assert not np.array_equal(start.features[LONGEST], centre.features[LONGEST])
    for a, b in zip(start.hashes[LONGEST], centre.hashes[LONGEST], strict=True):
        assert np.array_equal(a, b)
    assert audio.describe(centre.features[LONGEST], "centre")["from"].startswith(
        "librosa, middle 30 s"
    )


def test_short_audio_keeps_all_of_itself_whatever_the_crop() -> None:
    y = np.arange(1000, dtype=np.float32)
    assert np.array_equal(audio.window(y, "centre"), y)
    assert np.array_equal(audio.window(y, "start"), y)


def test_decoding_comes_from_the_audio_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCORE_AUDIO_WORKERS", "3")
    monkeypatch.setenv("ENCORE_AUDIO_CROP", "centre")
    assert audio.Decoding.of(AudioSettings()) == audio.Decoding(3, "centre")
    monkeypatch.setenv("ENCORE_AUDIO_WORKERS", "0")
    assert audio.Decoding.of(AudioSettings()).workers >= 1
    monkeypatch.setenv("ENCORE_AUDIO_CROP", "middle")
    with pytest.raises(ValueError, match="crop"):
        AudioSettings()


def test_mood_calibration_reuses_a_clip_the_catalog_links_to_under_another_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_second_decode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a clip was decoded again")

    monkeypatch.setattr(audio, "analyse", no_second_decode)
    clips = audio_sources.clips()
    rng = np.random.default_rng(0)
    features = {f"lib:{c.path.stem}": rng.normal(size=len(audio.FEATURES)) for c in clips}
    urls = {f"lib:{c.path.stem}": c.path.as_uri() for c in clips}
    _, report = content._calibrated_cues(features, urls, None)
    assert report["n"] == len(clips)
