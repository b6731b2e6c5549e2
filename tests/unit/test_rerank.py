"""Reranking and candidate scoring (pure)."""

from __future__ import annotations

import itertools

import numpy as np

from api.bundle import mips_augment
from models.rerank import Candidate, Context, Filters, normalise, rerank


def test_augmented_unit_vectors_rank_like_raw_inner_products() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(200, 8)) * rng.uniform(0.1, 3, size=(200, 1))
    aug = mips_augment(items)
    np.testing.assert_allclose(np.linalg.norm(aug, axis=1), 1.0, atol=1e-5)
    for _ in range(20):
        q = rng.normal(size=8)
        qa = np.append(q / np.linalg.norm(q), 0.0)
        assert list(np.argsort(-(aug @ qa))[:10]) == list(np.argsort(-(items @ q))[:10])


def test_constant_zero_signal_carries_no_weight() -> None:
    cands = [Candidate(f"t{i}", {"fresh": 0.0, "collab": float(i)}) for i in range(3)]
    cols = normalise(cands, ["fresh", "collab"])
    assert list(cols["fresh"]) == [0.0, 0.0, 0.0]
    assert list(cols["collab"]) == [0.0, 0.5, 1.0]


def test_filters_skips_and_artist_spacing() -> None:
    cands = [
        Candidate(
            f"t{i}",
            {"collab": 10 - i},
            ["collab"],
            artist=f"a{i % 3}",
            genre="jazz" if i % 2 else "rock",
            year=1990 + i,
            link="valid",
        )
        for i in range(10)
    ]
    cands[1].link = "dead"
    ctx = Context(
        recent=frozenset({"t2"}),
        disliked=frozenset({"t3"}),
        blocked_artists=frozenset({"a2"}),
        artist_skips={"a0": 2.0},
    )
    out = rerank(cands, {"collab": 1.0}, n=10, filters=Filters(), ctx=ctx, lam=1.0, artist_gap=1)
    ids = [r.candidate.track_id for r in out]
    assert "t1" not in ids
    assert "t2" not in ids
    assert "t3" not in ids
    assert all(r.candidate.artist != "a2" for r in out)  # blocked artist
    skipped = next(r for r in out if r.candidate.track_id == "t0")
    assert skipped.contributions["skips"] == -0.3  # two recent skips of its artist
    plain = rerank(
        cands,
        {"collab": 1.0},
        n=10,
        filters=Filters(),
        ctx=Context(recent=ctx.recent, disliked=ctx.disliked, blocked_artists=ctx.blocked_artists),
        lam=1.0,
        artist_gap=1,
    )
    assert next(r for r in plain if r.candidate.track_id == "t0").score == skipped.score + 0.3
    many = rerank(
        cands,
        {"collab": 1.0},
        n=10,
        filters=Filters(),
        ctx=Context(artist_skips={"a0": 4.0}),
        lam=1.0,
        artist_gap=0,
    )
    assert many[0].candidate.track_id != "t0"  # enough skips push the artist off the top
    for a, b in itertools.pairwise(out):  # gap of one between the same artist
        assert a.candidate.artist != b.candidate.artist
    jazz = rerank(
        cands,
        {"collab": 1.0},
        n=10,
        filters=Filters(genres=frozenset({"jazz"}), year_min=1993),
        ctx=Context(),
        lam=1.0,
        artist_gap=0,
    )
    assert {r.candidate.genre for r in jazz} == {"jazz"}
    assert min(r.candidate.year or 0 for r in jazz) >= 1993
