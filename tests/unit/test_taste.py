"""The personal taste classifier: it learns an audio-dependent taste, skips listeners with
too few events, round-trips as an artifact, and ranks cold tracks through the real
ranking code."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from api.bundle import load_taste
from batch.data import Labels
from batch.taste import fit_taste, publish_taste
from batch.taste_eval import auc, auc_eval, content_of, texts_of
from models import ranking
from models.demo import generate
from models.io.artifacts import ArtifactStore
from models.ranking import RankConfig, Request
from models.rerank import Filters
from models.serving import Bundle, CatalogTrack, make_collab
from models.state import UserState
from models.taste import Space, fit_space, label, make_taste


def hashed_text(texts: list[str], dim: int = 48) -> np.ndarray:
    """A cheap, deterministic stand-in for the sentence encoder: a sum of one seeded random
    vector per word (tracks sharing words get similar vectors)."""
    out = np.zeros((len(texts), dim))
    for i, text in enumerate(texts):
        for word in text.lower().replace(".", " ").replace(",", " ").split():
            key = int(hashlib.blake2b(word.encode(), digest_size=8).hexdigest(), 16)
            out[i] += np.random.default_rng(key).normal(size=dim)
    return out


@pytest.fixture(scope="module")
def population():
    demo = generate(seed=3, n_users=150, audio_taste=1.5)
    return demo, hashed_text(texts_of(demo))


def test_labels_follow_the_fold_rules() -> None:
    assert label("like", float("nan"), 0.8) == 1
    assert label("play", 0.85, 0.8) == 1
    assert label("play", 0.5, 0.8) == -1
    assert label("skip", 0.1, 0.8) == 0
    assert label("dislike", float("nan"), 0.8) == 0
    assert label("unlike", float("nan"), 0.8) == -1


def test_auc_counts_ties_half() -> None:
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
    assert np.isnan(auc(np.array([1.0]), np.array([1])))


def test_the_plain_demo_is_unchanged_by_the_audio_option() -> None:
    plain, audio = generate(seed=5, n_users=20), generate(seed=5, n_users=20, audio_taste=1.0)
    assert plain.tracks == audio.tracks
    assert plain.audio is None
    assert audio.audio is not None
    assert audio.audio.shape == (len(audio.tracks), 16)
    assert plain.interactions == generate(seed=5, n_users=20, audio_taste=0.0).interactions


def test_the_classifier_learns_an_audio_dependent_taste(population) -> None:
    demo, text = population
    result = auc_eval(demo, text, min_events=20, l2=10.0, text_dims=8)
    r = {k: v["auc_mean_per_listener"] for k, v in result["results"].items()}
    assert result["listeners_with_classifier"] >= 100
    assert r["classifier: audio + text"] > 0.63
    assert r["classifier: audio + text"] > r["baseline: listener's positive share"] + 0.1
    assert r["classifier: audio + text"] > r["baseline: track popularity"] + 0.08
    # where the taste does not depend on the sound, the audio tells much less
    control = auc_eval(
        replace(generate(seed=3, n_users=150), audio=demo.audio),
        text,
        min_events=20,
        l2=10.0,
        text_dims=8,
    )
    c = control["results"]["classifier: audio only"]["auc_mean_per_listener"]
    assert c < r["classifier: audio only"] - 0.05


def _labels(rows: list[tuple[str, str, bool]]) -> Labels:
    users, tracks, pos = zip(*rows, strict=True)
    return Labels(
        np.array(users), np.array(tracks), np.arange(len(rows), dtype=np.int64), np.array(pos)
    )


def _vectors(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 16)), rng.normal(size=(n, 24))


def test_listeners_with_too_few_events_or_one_label_get_no_classifier() -> None:
    audio, text = _vectors()
    row = {f"t{i}": i for i in range(40)}
    rows = [("many", f"t{i}", i % 3 != 0) for i in range(25)]
    rows += [("few", f"t{i}", i % 2 == 0) for i in range(19)]
    rows += [("fan", f"t{i}", True) for i in range(30)]
    rows += [("many", "not-in-content", True)] * 10  # no vectors: not counted
    fitted = fit_taste(_labels(rows), row, audio, text, min_events=20, l2=1.0, text_dims=4)
    assert fitted.users == ["many"]
    assert fitted.info["skipped_few_events"] == 1
    assert fitted.info["skipped_one_label"] == 1
    assert fitted.info["events"] == 25
    taste = make_taste("v", "c", fitted.users, fitted.weights, fitted.bias, fitted.prior,
                       fitted.space)  # fmt: skip
    feats = taste.space.features(audio, text)
    assert taste.signal("few", feats) is None
    assert taste.probability("many", feats) is not None
    assert fitted.prior[0] == pytest.approx(16 / 25)


def test_the_artifact_round_trips(tmp_path) -> None:
    audio, text = _vectors()
    rows = [(u, f"t{(i * 7 + k) % 40}", (i + k) % 3 != 0) for k, u in enumerate("ab") for i in
            range(30)]  # fmt: skip
    fitted = fit_taste(_labels(rows), {f"t{i}": i for i in range(40)}, audio, text,
                       min_events=20, l2=1.0, text_dims=4)  # fmt: skip
    store = ArtifactStore(tmp_path)
    version = publish_taste(store, fitted, "content-v1", params={"l2": 1.0}, data={})
    art = store.load("taste")
    assert art.version == version
    assert all(f.endswith((".npy", ".json")) for f in art.manifest["files"])
    taste = load_taste(art)
    assert taste.content_version == "content-v1"
    assert list(taste.users) == fitted.users == ["a", "b"]
    np.testing.assert_array_equal(taste.weights, fitted.weights)
    feats = fitted.space.features(audio, text)
    for user in ("a", "b"):
        u = fitted.users.index(user)
        z = feats @ fitted.weights[u].astype(np.float64) + float(fitted.bias[u])
        np.testing.assert_allclose(taste.probability(user, feats), 1 / (1 + np.exp(-z)))
    manifest = json.loads((art.path / "manifest.json").read_text())
    assert manifest["params"]["content_version"] == "content-v1"


def test_a_damaged_artifact_is_refused() -> None:
    space = fit_space(*_vectors(), text_dims=4)
    with pytest.raises(ValueError, match="weights"):
        make_taste("v", "c", ["a"], np.zeros((1, 3)), np.zeros(1), np.ones(1) / 2, space)
    with pytest.raises(ValueError, match="non-finite"):
        make_taste("v", "c", ["a"], np.full((1, space.dim), np.nan), np.zeros(1),
                   np.ones(1) / 2, space)  # fmt: skip


def _served_world():
    """A catalog of generated tracks, ALS-like factors for all but the cold ones, and two
    listeners whose classifiers are opposite about one cold track."""
    demo = generate(seed=9, n_tracks=120, n_artists=40, n_users=5, audio_taste=1.0)
    text = hashed_text(texts_of(demo))
    content = content_of(demo, text, version="c1")
    ids = content.ids
    cold = [t for i, t in enumerate(ids) if i % 6 == 0]
    warm = [t for t in ids if t not in set(cold)]
    rng = np.random.default_rng(1)
    collab = make_collab(
        "als1", warm, rng.normal(size=(len(warm), 8)), ["fan", "critic"],
        rng.normal(size=(2, 8)), np.ones(len(warm)), None,
    )  # fmt: skip
    space: Space = fit_space(np.asarray(demo.audio), text, text_dims=4)
    target = cold[3]
    f = space.features(demo.audio[[content.row[target]]], text[[content.row[target]]])[0]
    w = 4 * f / np.linalg.norm(f)
    taste = make_taste("taste1", "c1", ["fan", "critic"], np.stack([w, -w]), np.zeros(2),
                       np.full(2, 0.5), space)  # fmt: skip
    return Bundle(collab=collab, content=content, taste=taste), cold, target


def _position(bundle: Bundle, user: str, cold: list[str], target: str, weight: float) -> int:
    now = int(datetime(2024, 6, 2, tzinfo=UTC).timestamp() * 1000)
    req = Request(user, UserState(), {}, [(t, float(now)) for t in cold], now)
    cfg = RankConfig(taste_weight=weight)
    pool, _ = ranking.candidates(bundle, req, {}, cfg)
    prepared = ranking.prepare(bundle, req, pool, {})
    ranked = ranking.rank(prepared, {"collab": 0.6, "fresh": 0.1, "popularity": 0.1},
                          n=len(pool), filters=Filters(), lam=1.0, artist_gap=0,
                          taste_weight=cfg.taste_weight)  # fmt: skip
    ids = [r.candidate.track_id for r in ranked]
    if user == "fan" and weight:
        hit = ranked[ids.index(target)]
        assert hit.contributions.get("taste", 0) > 0
        assert hit.reason == "new here, and what you like to hear"
    return ids.index(target)


def test_a_cold_track_ranks_higher_for_a_listener_whose_classifier_likes_it() -> None:
    bundle, cold, target = _served_world()
    assert bundle.cold is not None
    assert target in {bundle.content.ids[r] for r in bundle.cold.rows}
    fan, critic = (_position(bundle, u, cold, target, 0.5) for u in ("fan", "critic"))
    assert fan < critic
    assert fan < 10
    # without the signal the two listeners' cold tracks are ranked alike
    plain = replace(bundle, taste=None)
    assert _position(plain, "fan", cold, target, 0.0) == _position(
        plain, "critic", cold, target, 0.0
    )


def test_the_classifier_is_unused_beside_another_content_version() -> None:
    bundle, _cold, _target = _served_world()
    other = replace(bundle, taste=replace(bundle.taste, content_version="c0"))
    assert other.cold is None
    assert other.versions()["taste"] == "taste1"


def test_a_track_only_the_catalog_topic_describes_gets_the_signal_from_its_text() -> None:
    bundle, _cold, target = _served_world()
    content = bundle.content
    assert content is not None
    text = content.text[content.row[target]]
    now = int(datetime(2024, 6, 2, tzinfo=UTC).timestamp() * 1000)
    meta = {"title": "Brand new", "artist": "Someone New", "genre": "pop"}
    catalog = {"new:1": CatalogTrack("new:1", meta, text, None, "", None, None, now)}
    signals = {}
    for user in ("fan", "critic"):
        req = Request(user, UserState(), {}, [("new:1", float(now))], now)
        pool, _ = ranking.candidates(bundle, req, catalog, RankConfig())
        pool.join(catalog)  # as the API's enrich step does
        ranking.prepare(bundle, req, pool, catalog)
        signals[user] = pool.signals["taste"][pool.mask(["new:1"])][0]
    assert signals["fan"] > 0
    assert signals["critic"] == 0
