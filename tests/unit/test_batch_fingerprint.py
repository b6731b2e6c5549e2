"""Identify: a 5-10 s excerpt of a real packaged clip finds its track; a sibling clip does not.

The clips are the ``immich-memories-music`` tracks of the ``data`` extra. The
held-out clip shares prompt, tempo and key with an indexed one (same mood and
style, another seed): the hardest kind of non-match.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batch import audio, audio_sources
from batch.fingerprint import excerpt, identify, publish_fingerprints
from models.fingerprint import SAMPLE_RATE, LandmarkIndex
from models.io.artifacts import ArtifactStore

pytest.importorskip(
    "immich_memories_music",
    reason="packaged clips come with the data extra: pip install -e '.[data]'",
)

INDEXED = (
    "imm:calm_acoustic_1",
    "imm:calm_acoustic_s411",
    "imm:energetic_acoustic_1",
    "imm:happy_electronic_1",
    "imm:tender_acoustic_1",
)
HELD_OUT = "imm:calm_acoustic_s522"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, dict[str, str]]:
    urls = {c.track_id: c.track()["audio_url"] for c in audio_sources.clips()}
    assert set(INDEXED) | {HELD_OUT} <= set(urls)
    result = audio.analyse([(t, urls[t]) for t in INDEXED], features=False)
    assert not result.errors
    assert set(result.hashes) == set(INDEXED)
    store = ArtifactStore(tmp_path_factory.mktemp("fp"))
    publish_fingerprints(store, result.hashes, data={"source": "test"})
    return store, urls


def noisy(y: np.ndarray, snr_db: float, gain_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(y**2))
    noise = rng.normal(scale=np.sqrt(power / 10 ** (snr_db / 10)), size=y.size)
    return ((y + noise) * 10 ** (gain_db / 20)).astype(np.float32)


@pytest.mark.parametrize(
    ("track", "start", "seconds", "snr", "gain"),
    [
        ("imm:calm_acoustic_1", 12.3, 7.0, 20.0, -12.0),
        ("imm:happy_electronic_1", 3.0, 5.0, 40.0, 0.0),
        ("imm:tender_acoustic_1", 20.5, 10.0, 10.0, 6.0),
    ],
)
def test_excerpt_identifies_its_track(
    published: tuple[ArtifactStore, dict[str, str]],
    track: str,
    start: float,
    seconds: float,
    snr: float,
    gain: float,
) -> None:
    store, urls = published
    clip = noisy(excerpt(urls[track], start, seconds), snr, gain)
    assert clip.size == pytest.approx(seconds * SAMPLE_RATE, abs=2)
    match = identify(store.load("fingerprint"), clip)
    assert match is not None
    assert match["track_id"] == track
    assert match["accepted"], match
    assert match["votes"] >= 3 * (match["runner_up"] + 1)


def test_a_sibling_not_in_the_catalog_is_not_accepted(
    published: tuple[ArtifactStore, dict[str, str]],
) -> None:
    store, urls = published
    art = store.load("fingerprint")
    for start in (2.0, 11.0, 19.0):
        match = identify(art, excerpt(urls[HELD_OUT], start, 7.0))
        assert match is None or not match["accepted"], match
    assert art.manifest["params"]["min_votes"] == 10
    assert art.manifest["params"]["min_ratio"] == 3.0


def test_silence_and_empty_index_find_nothing() -> None:
    empty = LandmarkIndex.build([])
    assert empty.query(np.zeros(SAMPLE_RATE * 5, np.float32)) is None
    assert LandmarkIndex.build([np.zeros(SAMPLE_RATE, np.float32)]).n_tracks == 1


def test_track_ids_follow_the_packaged_files(tmp_path: Path) -> None:
    clips = audio_sources.clips()
    assert len(clips) >= 20
    calm = next(c for c in clips if c.track_id == "imm:calm_acoustic_1")
    assert (calm.mood, calm.bpm, calm.style) == ("calm", 68, "acoustic")
    meta = calm.track()
    assert meta["audio_url"].startswith("file://")
    assert "calm" in meta["tags"]
