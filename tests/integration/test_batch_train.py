"""``encore train all --source demo`` publishes artifacts the stream workers and API can load;
``--source events`` trains from a Parquet snapshot of a real broker's topics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from batch import audio_sources
from batch.audio import PITCHES
from batch.data import from_events
from batch.fingerprint import excerpt, identify
from batch.text import encoder
from encore.services import Proc, create_topics
from encore.train_cli import app
from models.bandit import ARMS
from models.demo import generate
from models.index import search
from models.io.artifacts import ArtifactStore
from models.io.producer import EventProducer
from models.mood import text_mood
from models.topics import all_topics
from streams.content import ContentEncoder
from streams.itemspace import load_space

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    result = CliRunner().invoke(
        app, ["train", "all", "--source", "demo", "--no-progress"],
        env={"ENCORE_ARTIFACTS_ROOT": str(root)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith('{"published"'))
    published = json.loads(line)["published"]
    assert set(published) == {
        "als", "lightgcn", "hybrid", "policy", "content", "fingerprint", "taste",
    }  # fmt: skip
    return root


def test_demo_taste_classifiers_belong_to_the_content_version_and_load_in_the_api(
    demo_root: Path,
) -> None:
    from api.bundle import load_taste

    store = ArtifactStore(demo_root)
    art = store.load("taste")
    assert art.manifest["params"]["content_version"] == store.current_version("content")
    assert art.manifest["metrics"]["users_fitted"] > 200  # demo listeners have ~60 events
    taste = load_taste(art)
    assert taste.weights.shape == (len(taste.users), taste.space.dim)


def test_demo_artifacts_load_where_they_are_used(demo_root: Path) -> None:
    store = ArtifactStore(demo_root)
    for kind in ("als", "lightgcn"):
        space = load_space(demo_root, kind)  # the stream workers' loader
        assert len(space.row) > 500
        art = store.load(kind)
        assert art.manifest["metrics"]["validation"]["ndcg@10"] > 0.05
        assert art.manifest["data"]["source"] == "demo"
        assert all(t.startswith("demo:t") for t in art.json("item_ids.json"))
    als = store.load("als")
    assert als.manifest["params"]["confidence"] == "bm25"
    assert als.array("user_factors.npy").shape[0] == len(als.json("user_ids.json"))

    version, maps = ContentEncoder(demo_root).maps()  # the catalog agent's loader
    assert version == store.current_version("content")
    assert maps["text_to_cf"].shape == (384, als.array("item_factors.npy").shape[1])
    assert str(maps["_space"][0]) == als.version


def test_demo_policy_is_tuned_on_served_lists_and_loads_in_the_api(demo_root: Path) -> None:
    from api.bundle import load_policy

    store = ArtifactStore(demo_root)
    art = store.load("policy")
    params = art.manifest["params"]
    assert params["collaborative_source"] == "hybrid"
    assert params["models"]["hybrid"] == store.current_version("hybrid")
    valid = art.manifest["metrics"]["validation"]
    assert set(valid) == set(ARMS)
    served = load_policy(art)
    assert set(served.policy.arms) == set(ARMS)
    assert "collab-heavy" not in served.policy.capped
    assert {"content-heavy", "discovery"} <= served.policy.capped  # unmeasured offline
    means = {a: p.alpha / (p.alpha + p.beta) for a, p in served.policy.priors.items()}
    best = max(valid, key=lambda a: valid[a]["ndcg@10"])
    assert means[best] == max(means.values())
    assert served.mmr_lambda is not None
    assert 0 < served.mmr_lambda <= 1


def test_demo_hybrid_lists_and_batch_recommendations(demo_root: Path, tmp_path: Path) -> None:
    store = ArtifactStore(demo_root)
    als, hybrid = store.load("als"), store.load("hybrid")
    assert set(hybrid.manifest["files"]) == {
        "user_ids.json", "item_ids.json", "top_items.npy", "top_scores.npy"
    }  # fmt: skip
    params = hybrid.manifest["params"]
    assert set(params["weights"]) == {"als", "lightgcn", "ease", "tags"}  # demo tracks have tags
    assert params["components"]["als"]["version"] == als.version  # reused, not refitted
    valid = hybrid.manifest["metrics"]["validation"]
    alone = valid["by_component"]["ndcg@10"]
    assert alone["als"] == pytest.approx(als.manifest["metrics"]["validation"]["ndcg@10"])
    assert valid["ndcg@10"] >= alone["als"]
    assert hybrid.json("user_ids.json") == als.json("user_ids.json")
    top, scores = hybrid.array("top_items.npy"), hybrid.array("top_scores.npy")
    assert top.shape == (len(als.json("user_ids.json")), 200)
    indptr, indices = als.array("seen_indptr.npy"), als.array("seen_indices.npy")
    for u in range(top.shape[0]):
        seen = set(indices[indptr[u] : indptr[u + 1]].tolist())
        assert not seen & set(top[u][top[u] >= 0].tolist())
        assert np.all(np.diff(scores[u][top[u] >= 0]) <= 0)

    users = als.json("user_ids.json")[:20]
    (tmp_path / "users.txt").write_text("\n".join(users))
    items = hybrid.json("item_ids.json")
    first = {u: items[top[r, 0]] for r, u in enumerate(users)}  # each user's hybrid top item
    (tmp_path / "exclude.tsv").write_text("".join(f"{u}\t{t}\n" for u, t in first.items()))
    env = {"ENCORE_ARTIFACTS_ROOT": str(demo_root)}
    files = ["--users", str(tmp_path / "users.txt"), "--exclude", str(tmp_path / "exclude.tsv")]
    for kind in ("als", "lightgcn", "hybrid"):
        out = tmp_path / f"{kind}.jsonl"
        args = ["recommend-batch", *files, "--out", str(out), "--kind", kind, "--k", "20"]
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        docs = [json.loads(line) for line in out.read_text().splitlines()]
        assert [d["user_id"] for d in docs] == users
        for d in docs:
            assert len(d["items"]) == 20
            assert first[d["user_id"]] not in d["items"]
            assert d["model"] == kind


def test_content_artifact_covers_the_catalog(demo_root: Path) -> None:
    import faiss

    art = ArtifactStore(demo_root).load("content")
    ids, items = art.json("item_ids.json"), art.json("items.json")
    n = len(ids)
    assert n == 1_500 + len(audio_sources.clips())
    text = art.array("text.npy")
    assert text.shape == (n, 384)
    assert np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-4)
    mood = art.array("mood.npy")
    assert mood.shape == (n, 2)
    assert np.all(np.abs(mood) <= 1.0)
    assert art.array("audio.npy").shape[0] == n
    index = faiss.read_index(str(art.file("text.faiss")))
    _, found = search(index, text[:5], 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]
    healing = art.manifest["metrics"]["healing"]
    assert healing["genre"]["filled_from_artist"] > 300  # the demo drops 30% of genres
    assert healing["description"]["generated"] > 1_000
    assert (
        sum(1 for it in items if it["healed"].get("genre"))
        >= healing["genre"]["filled_from_artist"]
    )
    assert art.manifest["metrics"]["text_to_cf"]["heldout_cosine"] > 0.5
    lexicon = art.json("lexicon.json")
    assert lexicon["sad"][0] < 0 < lexicon["happy"][0]
    if audio_sources.available():
        calm = ids.index("imm:calm_acoustic_1")
        energetic = ids.index("imm:energetic_electronic_2")
        assert items[calm]["has_audio"]
        assert mood[calm, 1] < mood[energetic, 1]
        assert art.manifest["metrics"]["mood_calibration"]["n"] >= 20
        # what a listener reads: tempo and mode against the clips' own labels
        labelled = [c for c in audio_sources.clips() if c.bpm]
        tempo_ok = mode_ok = 0
        for c in labelled:
            f = items[ids.index(c.track_id)]["audio_features"]
            assert f["from"].startswith("librosa")
            assert f["key"] in PITCHES
            tempo_ok += any(
                abs(f["tempo_bpm"] - b) / b <= 0.08 for b in (c.bpm, 2 * c.bpm, c.bpm / 2)
            )
            mode_ok += f["mode"] == c.mode
        assert tempo_ok >= 0.6 * len(labelled)  # 20 of 28 here (octave errors allowed)
        assert mode_ok >= 0.6 * len(labelled)  # 20 of 28 here
    assert all(it["audio_features"] is None for it in items if not it["has_audio"])


def test_free_text_mood_from_the_published_maps(demo_root: Path) -> None:
    art = ArtifactStore(demo_root).load("content")
    words = sorted(art.json("lexicon.json"))
    values = np.array([art.json("lexicon.json")[w] for w in words], np.float32)
    queries = ["i miss my ex", "pump me up", "rainy sunday", "songs to cry to after she left me"]
    va, nearest, _ = text_mood(
        encoder().encode(queries),
        art.array("text_to_mood.npy"),
        art.array("text_to_mood_bias.npy"),
        art.array("lexicon_vectors.npy"),
        values,
    )
    assert va[0, 0] < 0  # missing someone: low valence
    assert va[1, 1] > 0.3  # pump me up: high arousal
    assert va[2, 1] < 0  # rainy sunday: low arousal
    assert va[3, 0] < -0.2
    assert words[nearest[2, 0]] in {"rainy", "rainy day", "rain", "sunday morning", "lazy"}


def test_published_fingerprints_identify_a_demo_clip(demo_root: Path) -> None:
    art = ArtifactStore(demo_root).load("fingerprint")
    clips = {c.track_id: c for c in audio_sources.clips()}
    assert sorted(clips) == art.json("track_ids.json")
    if not clips:
        pytest.skip("no packaged clips: install the data extra")
    clip = clips["imm:nostalgic_electronic_2"]
    match = identify(art, excerpt(clip.track()["audio_url"], 9.0, 6.0))
    assert match is not None
    assert match["accepted"]
    assert match["track_id"] == clip.track_id


def _renamed(events: list[Any], tag: str) -> list[Any]:
    out = []
    for e in events:
        update = {"event_id": f"{tag}-{e.event_id}"}
        if hasattr(e, "user_id"):
            update["user_id"] = f"{tag}:{e.user_id}"
        out.append(e.model_copy(update=update))
    return out


async def test_train_from_the_event_log(broker: Proc, tmp_path: Path) -> None:
    await create_topics(broker.address, all_topics(), 6)
    demo = generate(seed=21, n_tracks=300, n_artists=40, n_users=60, mean_events=40)
    interactions = _renamed(demo.interactions, "bt")
    async with EventProducer(broker.address, 6) as producer:
        await producer.send_events(demo.tracks)
        await producer.send_events(interactions)
    env = {
        "ENCORE_ARTIFACTS_ROOT": str(tmp_path / "artifacts"),
        "ENCORE_KAFKA_BOOTSTRAP": broker.address,
        "ENCORE_KAFKA_PARTITIONS": "6",
        "ENCORE_RUN_DIR": str(tmp_path / "run"),
    }
    train = ["train", "als", "--source", "events", "--no-progress"]
    # the command runs its own event loop, so it runs in a thread here
    result = await asyncio.to_thread(CliRunner().invoke, app, train, env=env)
    assert result.exit_code == 0, result.output
    snapshots = list((tmp_path / "run" / "snapshots").iterdir())
    assert len(snapshots) == 1
    assert (snapshots[0] / "interactions.parquet").is_file()
    art = ArtifactStore(tmp_path / "artifacts").load("als")
    data = art.manifest["data"]
    assert data["source"] == "events"
    assert data["snapshot"] == snapshots[0].name
    assert sum(data["offsets"]["interactions"].values()) > 0
    ours = from_events("ours", demo.tracks, interactions)
    assert set(ours.users) <= set(art.json("user_ids.json"))  # the topics may hold more

    again = await asyncio.to_thread(
        CliRunner().invoke, app, [*train, "--path", str(snapshots[0])], env=env
    )
    assert again.exit_code == 0, again.output
    second = ArtifactStore(tmp_path / "artifacts").load("als")
    assert second.version != art.version
    assert np.array_equal(second.array("item_factors.npy"), art.array("item_factors.npy"))
