"""Mood: cue calibration, the per-track blend, imputation and the pure free-text answer."""

from __future__ import annotations

import numpy as np
import pytest

from batch.audio import FEATURES, Reducer
from batch.impute import fit_text_map, impute_rows
from batch.mood import CueModel, mood_target, ridge, spearman, track_moods
from models.mood import LEXICON, tag_mood, text_mood


def test_cue_model_ranks_fast_bright_tracks_as_aroused() -> None:
    rng = np.random.default_rng(0)
    n = 30
    x = rng.normal(size=(n, len(FEATURES)))
    tempo = rng.uniform(60, 160, n)
    x[:, FEATURES.index("tempo")] = tempo
    for name in ("onset_mean", "onset_rate", "centroid_mean"):
        x[:, FEATURES.index(name)] = (tempo - 110) / 30 + 0.3 * rng.normal(size=n)
    y = np.stack([np.zeros(n), np.clip((tempo - 100) / 40, -1, 1)], axis=1)
    model = CueModel()
    quality = model.calibrate(x, y)
    assert quality["arousal_spearman"] > 0.8
    pred = model.predict(x)
    assert np.all(np.abs(pred) <= 1.0)
    assert spearman(pred[:, 1], tempo) > 0.8
    assert set(model.params()) >= {"mean", "std", "affine", "arousal_cues"}


def test_calibration_targets_use_the_tempo() -> None:
    assert mood_target("calm", 68)[1] < mood_target("calm", None)[1] < 0
    assert mood_target("energetic", 150)[1] > 0.8


def test_track_moods_blend_what_each_track_has() -> None:
    audio = np.array([[0.8, 0.8], [0.8, 0.8], [0.8, 0.8]])
    text = np.array([[-0.5, -0.5], [-0.5, -0.5], [-0.5, -0.5]])
    moods, used = track_moods(audio, np.array([0.5, 0.25, 0.0]), [["sad"], [], []], text)
    assert used == ["audio+tags+text", "audio+text", "text"]
    sad = np.array(LEXICON["sad"])
    assert moods[0] == pytest.approx((0.5 * audio[0] + 0.3 * sad + 0.2 * text[0]) / 1.0)
    assert moods[1] == pytest.approx((0.25 * audio[1] + 0.2 * text[1]) / 0.45)
    assert moods[2] == pytest.approx(text[2])


def test_imputation_prefers_genre_then_close_text_neighbours() -> None:
    values = np.array([[1.0, 0], [3.0, 0], [0, 5.0], [0, 0], [0, 0], [0, 0]])
    known = np.array([True, True, True, False, False, False])
    genres = ["rock", "rock", "jazz", "rock", "jazz", None]
    text = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [0.6, 0.8], [-1, 0]], float)
    out, how = impute_rows(values, known, genres, text)
    assert how == [None, None, None, "genre", "text", None]  # one jazz track: no prototype
    assert out[3].tolist() == [2.0, 0.0]
    assert out[4][1] > 0  # pulled towards its nearest text neighbour with audio
    assert out[5].tolist() == [0.0, 0.0]  # nothing similar: left empty


def test_text_map_and_ridge_recover_a_linear_relation() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6))
    w_true = rng.normal(size=(6, 3))
    w, b = ridge(x, x @ w_true + 0.5, alpha=1e-6)
    assert w == pytest.approx(w_true, abs=1e-3)
    assert b == pytest.approx(np.full(3, 0.5), abs=1e-3)
    _, _, report = fit_text_map(x, x @ w_true)
    assert report["heldout_cosine"] > 0.95 > report["heldout_cosine_mean_vector"]


def test_free_text_mood_is_pure_and_explains_itself() -> None:
    assert tag_mood(["Sad", "unknown"]) == LEXICON["sad"]
    assert tag_mood(["nothing here"]) is None
    lex = np.eye(3, dtype=np.float32)  # three lexicon "embeddings"
    va = np.array([[0.8, 0.5], [-0.7, -0.4], [0.1, -0.9]], np.float32)
    query = np.array([[0.0, 1.0, 0.0]], np.float32)
    zero_w, zero_b = np.zeros((3, 2), np.float32), np.zeros(2, np.float32)
    out, nearest, sims = text_mood(query, zero_w, zero_b, lex, va, k=2)
    assert nearest[0, 0] == 1
    assert sims[0, 0] == pytest.approx(1.0)
    assert out[0] == pytest.approx(va[1] / 2, abs=1e-3)  # mean of ridge (0) and the neighbour


def test_reducer_is_unit_length_and_pads_small_catalogs() -> None:
    x = np.random.default_rng(2).normal(size=(5, len(FEATURES)))
    z = Reducer(dim=16).fit(x).transform(x)
    assert z.shape == (5, 16)
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert np.all(z[:, 4:] == 0)  # 5 tracks give at most 4 components
