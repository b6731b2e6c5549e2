"""The learned audio encoder on real packaged clips: training, its artifact, what it finds.

The clips are the ``immich-memories-music`` tracks of the ``data`` extra. Training
runs for a few dozen steps here (seconds); ``encore eval-audio`` measures the real one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from batch import audio, audio_eval, audio_sources, encoder
from batch.content import train_content
from batch.data import TrainData
from batch.learned_audio import config_of
from models.io.artifacts import ArtifactStore
from models.settings import AudioSettings

pytest.importorskip(
    "immich_memories_music",
    reason="packaged clips come with the data extra: pip install -e '.[data]'",
)

CONFIG = encoder.EncoderConfig(dim=24, steps=120, seed=3)
N_CLIPS = 10


def _clips() -> list[audio_sources.Clip]:
    clips = audio_sources.clips()
    return [clips[i] for i in np.linspace(0, len(clips) - 1, N_CLIPS).astype(int)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    clips = _clips()
    waves = [audio.load(c.path) for c in clips]
    model, report = encoder.train(waves, CONFIG)
    emb = encoder.embed(model, waves)
    store = ArtifactStore(tmp_path_factory.mktemp("artifacts"))
    ids = [c.track_id for c in clips]
    version = encoder.publish_encoder(store, model, CONFIG, ids, emb, metrics=report)
    return {"waves": waves, "model": model, "emb": emb, "store": store, "version": version}


def test_the_artifact_loads_back_and_gives_the_same_embeddings(trained: dict[str, Any]) -> None:
    art = trained["store"].load(encoder.KIND)
    assert art.version == trained["version"]
    assert set(art.manifest["files"]) == {"weights.safetensors", "track_ids.json", "embeddings.npy"}
    assert art.manifest["params"]["dim"] == CONFIG.dim
    assert art.json("track_ids.json") == [c.track_id for c in _clips()]
    model = encoder.load_encoder(art)
    again = encoder.embed(model, trained["waves"])
    assert np.allclose(again, trained["emb"], atol=1e-6)
    assert np.allclose(art.array("embeddings.npy"), trained["emb"], atol=1e-6)
    loss = art.manifest["metrics"]
    assert loss["loss_last"] < loss["loss_first"]


def test_embeddings_are_unit_vectors_of_the_stated_dimension(trained: dict[str, Any]) -> None:
    emb = trained["emb"]
    assert emb.shape == (N_CLIPS, CONFIG.dim)
    assert emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    short = encoder.embed(trained["model"], [trained["waves"][0][: audio.SAMPLE_RATE]])
    assert short.shape == (1, CONFIG.dim)
    assert np.isclose(np.linalg.norm(short), 1.0, atol=1e-5)
    assert len(set(map(tuple, np.round(emb, 4)))) == N_CLIPS  # not collapsed to one point


def test_an_augmented_crop_finds_its_source_track(trained: dict[str, Any]) -> None:
    crops = audio_eval.query_crops(trained["waves"], seed=7)
    got = audio_eval.recovery(trained["emb"], encoder.embed(trained["model"], crops))
    # chance is 1 in 10 at rank 1 and 5 in 10 within 5
    assert got["recall@1"] >= 0.5, got
    assert got["recall@5"] >= 0.9, got


def test_the_setting_picks_the_content_artifacts_audio_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENCORE_AUDIO_VECTORS", "learned")
    monkeypatch.setenv("ENCORE_AUDIO_ENCODER_STEPS", "15")
    settings = AudioSettings()
    assert (settings.vectors, settings.encoder_steps) == ("learned", 15)
    assert AudioSettings.model_fields["vectors"].default == "librosa"
    clips = audio_sources.clips()  # all of them: the mood calibration decodes no more
    catalog = {c.track_id: c.track() for c in clips}
    catalog["no-audio"] = {"track_id": "no-audio", "title": "Quiet", "genre": "acoustic"}
    data = TrainData("clips", [], [], sp.csr_matrix((0, 0)), catalog)
    decoded = audio.analyse(
        [(c.track_id, c.track()["audio_url"]) for c in clips], fingerprints=False
    )
    n = len(catalog)

    for vectors in ("librosa", "learned"):
        store = ArtifactStore(tmp_path / vectors)
        train_content(
            store,
            data,
            audio_pass=decoded,
            vectors=vectors,  # type: ignore[arg-type]
            encoder_config=replace(config_of(settings), batch=8),
        )
        art = store.load("content")
        ids = art.json("item_ids.json")
        vecs = art.array("audio.npy")
        params = art.manifest["params"]
        assert params["audio_vectors"] == vectors
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)  # no-audio imputed
        if vectors == "librosa":
            assert vecs.shape == (n, audio.AUDIO_DIM)
            assert "audio_components.npy" in art.manifest["files"]
            assert store.current_version(encoder.KIND) is None
            continue
        assert vecs.shape == (n, settings.encoder_dim)
        assert "audio_components.npy" not in art.manifest["files"]
        enc = store.load(encoder.KIND)
        assert params["audio_encoder_version"] == enc.version
        assert enc.manifest["params"]["steps"] == 15
        rows = [ids.index(t) for t in enc.json("track_ids.json")]
        assert sorted(rows) == sorted(ids.index(c.track_id) for c in clips)
        assert np.allclose(vecs[rows], enc.array("embeddings.npy"), atol=1e-6)
        assert art.manifest["metrics"]["audio_encoder"]["tracks"] == len(clips)


def test_the_evaluation_compares_every_method_on_every_measure(tmp_path: Path) -> None:
    config = encoder.EncoderConfig(steps=20, batch=8)
    result = audio_eval.run((0,), config, held_out=False, limit=N_CLIPS)
    assert result["clips"] == N_CLIPS
    assert set(result["mean"]) == {"librosa 69 (standardised)", "librosa 16 (reduced)", "learned"}
    for row in result["mean"].values():
        assert set(row) == {"mood_p@4", "style_p@10", "recall@1", "recall@5"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
    md = audio_eval.write(result, tmp_path, "encore eval-audio --seeds 1")
    report = json.loads((tmp_path / "audio.json").read_text())
    assert report["command"] == "encore eval-audio --seeds 1"
    assert report["mean"] == result["mean"]
    text = md.read_text()
    assert "| learned |" in text
    assert "| chance |" in text


def test_eval_audio_is_a_command() -> None:
    from encore.train_cli import app

    result = CliRunner().invoke(app, ["eval-audio", "--help"])
    assert result.exit_code == 0, result.output
    assert "--no-held-out" in result.output
