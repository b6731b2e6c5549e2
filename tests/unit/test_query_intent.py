"""Query intent, the descriptive tag space and the query ranker (pure, synthetic vectors)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.intent import NameIndex, classify, content_words, query_problem
from models.io.artifacts import ArtifactStore
from models.io.queryspace import load_tag_space, save_tag_space
from models.query import QuerySpace, rank, space_from_items
from models.tagspace import (
    TagSpace,
    build,
    is_generic,
    item_matrix,
    listener_weight,
    vocabulary,
)

NAMES = NameIndex.build(
    [("Drive", 0), ("Radiohead", 1), ("Massive Attack", 2), ("Calm", 3), ("The Night", 4)]
)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("radiohead", "artist"),
        ("play some Radiohead please", "artist"),
        ("songs by massive attack", "artist"),
        ("songs for a long night drive", "mood"),  # one name word in three is not enough
        ("something to fall asleep to", "mood"),
        ("calm", "mood"),  # the name is also a descriptive word
        ("sad songs like massive attack", "mix"),
        ("some jazz please", "genre"),
        ("", "mood"),
    ],
)
def test_intent_prefers_mood_unless_a_name_covers_most_of_the_query(query: str, kind: str) -> None:
    got = classify(query, NAMES, genres={"jazz", "rock"}, descriptive=frozenset({"calm", "sad"}))
    assert got.kind == kind, got


def test_artist_intent_names_the_rows() -> None:
    got = classify("Massive Attack", NAMES)
    assert got.rows == (2,)
    assert got.coverage == 1.0
    assert content_words("play me some songs") == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   \t", "empty"),
        ("?!... ---", "no_words"),
        ("🎵🎶", "no_words"),
        ("ночная поездка", "unsupported_language"),
        ("夜のドライブ", "unsupported_language"),
        ("rainy sunday", None),
        ("chanson pour s'endormir", None),
        ("1999", None),
    ],
)
def test_query_problems(text: str, problem: str | None) -> None:
    assert query_problem(text) == problem


@pytest.mark.parametrize(
    "tag", ["seen live", "favourite songs", "Favorites", "awesome", "love", "<3", "my top 10"]
)
def test_generic_tags(tag: str) -> None:
    assert is_generic(tag)


@pytest.mark.parametrize("tag", ["love songs", "chillout", "sad", "feel good", "love metal"])
def test_descriptive_tags_are_kept(tag: str) -> None:
    assert not is_generic(tag)


def test_vocabulary_drops_generic_rare_and_self_naming_tags() -> None:
    item_tags = [["chillout", "seen live", "drive"], ["chillout", "seen live"], ["chillout", "x"]]
    artists = ["Drive", "B", "C"]
    assert vocabulary(item_tags, artists, min_items=1) == ["chillout", "x"]
    assert vocabulary(item_tags, artists, min_items=2) == ["chillout"]


def test_item_matrix_weights_tags_by_position() -> None:
    m = item_matrix([["a", "b"], ["b"]], ["a", "b"]).toarray()
    assert m[0, 0] == pytest.approx(1.0)
    assert m[0, 1] == pytest.approx(1 / np.log2(3))
    assert m[1].tolist() == [0.0, 1.0]


def test_item_matrix_weights_tags_by_listeners_when_counts_are_known() -> None:
    counts = [{"a": 1, "B": 20, "zzz": 5}, None]
    m = item_matrix([["a"], ["b"]], ["a", "b"], counts).toarray()
    assert m[0, 0] == pytest.approx(listener_weight(1))  # every tag, not only the listed ones
    assert m[0, 1] == pytest.approx(listener_weight(20))
    assert m[0, 0] < m[0, 1] < 1.0
    assert m[1].tolist() == [0.0, 1.0]  # no counts: position weights


def test_expansion_moves_tags_of_another_mood_down() -> None:
    vecs = {"sad music": _onehot(0), "death metal music": _onehot(1)}
    space = build(
        [["sad"], ["death metal"]],
        _lookup(vecs),
        min_items=1,
        mood=lambda v: np.where(v[:, :1] > 0, [[-0.8, -0.4]], [[-0.6, 0.9]]),
    )
    q = _onehot(1) * 0.72 + _onehot(0) * 0.7  # "grieving": a little nearer death metal in words
    q = q / np.linalg.norm(q)
    assert space.tags[space.expand(q, k=1)[0][0]] == "death metal"
    rows, _ = space.expand(q, k=1, target=(-0.8, -0.4))
    assert space.tags[rows[0]] == "sad"


def _onehot(i: int, d: int = 6) -> np.ndarray:
    v = np.zeros(d, dtype=np.float32)
    v[i] = 1.0
    return v


def _lookup(vecs: dict[str, np.ndarray]) -> Callable[[list[str]], np.ndarray]:
    return lambda texts: np.stack([vecs[t] for t in texts])


def test_tag_space_expands_a_query_into_its_closest_tags() -> None:
    vecs = {"chillout music": _onehot(0), "metal music": _onehot(1), "ambient music": _onehot(2)}
    space = build([["chillout"], ["metal"], ["ambient"]], _lookup(vecs), min_items=1)
    q = _onehot(0) * 0.9 + _onehot(2) * 0.3
    rows, weights = space.expand(q / np.linalg.norm(q), k=2)
    assert [space.tags[r] for r in rows] == ["chillout", "ambient"]
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] > weights[1]
    scores = space.scores(rows, weights)
    assert scores.argmax() == 0
    assert scores[1] == 0.0


def _space() -> tuple[QuerySpace, np.ndarray]:
    """Items 0-1 are named after a query word but tagged rock; items 2-4 are tagged chillout."""
    items = [
        {"artist": "Drive", "tags": ["rock"], "popularity_tier": "head"},
        {"artist": "Long", "tags": ["rock"], "popularity_tier": "head"},
        {"artist": "Aa", "tags": ["chillout", "ambient"], "popularity_tier": "tail"},
        {"artist": "Bb", "tags": ["ambient"], "popularity_tier": "mid"},
        {"artist": "Cc", "tags": ["pop", "chillout"], "popularity_tier": "head"},
    ]
    vecs = {"rock music": _onehot(1), "chillout music": _onehot(0), "ambient music": _onehot(2),
            "pop music": _onehot(3)}  # fmt: skip
    tags = build([i["tags"] for i in items], _lookup(vecs), min_items=1)
    text = np.stack([_onehot(4), _onehot(4), _onehot(5), _onehot(5), _onehot(5)])
    return space_from_items(items, tags), text  # type: ignore[arg-type]


def test_mood_query_ranks_by_tags_not_by_names() -> None:
    space, text = _space()
    q = _onehot(0) * 0.8 + _onehot(2) * 0.55 + _onehot(4) * 0.2  # near chillout, a bit of name
    q = q / np.linalg.norm(q)
    mood = np.zeros((5, 2), dtype=np.float32)
    got = rank("songs for a long night drive", q, space, text=text, mood=mood, audio=None,
               target=None, k=2)  # fmt: skip
    assert got.intent.kind == "mood"
    assert set(got.rows.tolist()) == {2, 4}  # tagged chillout, not named "Drive" or "Long"
    assert got.tags[0][0] == "chillout"
    assert got.signal == "mood"
    assert list(got.scores) == sorted(got.scores, reverse=True)


def test_artist_query_puts_the_named_artist_first() -> None:
    space, text = _space()
    got = rank("drive", _onehot(4), space, text=text, mood=np.zeros((5, 2), np.float32),
               audio=None, target=None, k=5)  # fmt: skip
    assert got.intent.kind == "artist"
    assert got.rows[0] == 0
    assert got.signal == "text"


def test_without_a_tag_space_descriptive_queries_use_the_text_space() -> None:
    space, text = _space()
    empty = TagSpace([], np.zeros((0, 6), np.float32), space.tags.items[:, :0])
    bare = QuerySpace(empty, space.names, space.prior, space.has_audio, space.genres, frozenset())
    got = rank("calm evening", _onehot(5), bare, text=text, mood=np.zeros((5, 2), np.float32),
               audio=None, target=None, k=3)  # fmt: skip
    assert set(got.rows.tolist()) == {2, 3, 4}


def test_tag_space_round_trips_through_the_artifact_with_its_moods(tmp_path: Path) -> None:
    vecs = {"sad music": _onehot(0), "party music": _onehot(1)}
    space = build(
        [["sad"], ["party"]],
        _lookup(vecs),
        min_items=1,
        counts=[{"sad": 3}, None],
        mood=lambda v: v[:, :2] - 0.5,
    )
    store = ArtifactStore(tmp_path, keep=1)
    path = store.stage("content")
    save_tag_space(path, space)
    back = load_tag_space(store.load("content", store.publish("content", path, params={})), 2)
    assert back is not None
    assert back.tags == space.tags
    assert back.moods is not None
    assert space.moods is not None
    assert np.allclose(back.moods, space.moods)
    assert np.allclose(back.items.toarray(), space.items.toarray())
