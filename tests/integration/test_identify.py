"""``POST /v1/identify`` on real packaged music: a noisy, re-encoded 7 s excerpt finds its
track; a sibling clip that is not in the catalog gets "no exact match"; bad uploads get
a 422 that says why."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from batch import audio, audio_sources
from batch.fingerprint import publish_fingerprints
from models.io.artifacts import ArtifactStore
from models.settings import ArtifactSettings, Settings

soundfile = pytest.importorskip("soundfile")
pytest.importorskip(
    "immich_memories_music",
    reason="packaged clips come with the data extra: pip install -e '.[data]'",
)

INDEXED = ("imm:calm_acoustic_1", "imm:energetic_acoustic_1", "imm:happy_electronic_1")
SIBLING = "imm:calm_acoustic_s522"  # same prompt, tempo and key as calm_acoustic_1


@pytest.fixture(scope="module")
def urls() -> dict[str, str]:
    return {c.track_id: c.track()["audio_url"] for c in audio_sources.clips()}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, urls: dict[str, str]) -> Iterator[TestClient]:
    result = audio.analyse([(t, urls[t]) for t in INDEXED], features=False)
    assert not result.errors
    root = tmp_path_factory.mktemp("artifacts")
    publish_fingerprints(ArtifactStore(root), result.hashes, data={"source": "test"})
    with TestClient(create_app(Settings(artifacts=ArtifactSettings(root=root)))) as c:
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


def test_bad_uploads_say_what_is_wrong(client: TestClient, urls: dict[str, str]) -> None:
    status, body = _post(client, b"not audio at all")
    assert status == 422
    assert "not a readable audio file" in body["detail"]
    status, body = _post(client, _clip(urls[INDEXED[1]], 0.0, 1.0, "WAV"))
    assert status == 422
    assert "1.0 s" in body["detail"]
    assert client.post("/v1/identify").status_code == 422  # no file part
    status, body = _post(client, b"")
    assert status == 422
    assert "empty" in body["detail"]
