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


def _mmr_by_definition(
    cands: list[Candidate], scores: np.ndarray, n: int, lam: float, gap: int
) -> list[int]:
    """MMR written out pair by pair: the specification the vectorised one must match."""
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    picked: list[int] = []
    sim_max = np.zeros(len(cands))
    while order and len(picked) < n:
        recent = {cands[i].artist for i in picked[-gap:]} - {None} if gap else set()

        def value(i: int) -> tuple[float, int]:  # ties: the first in score order
            return (lam * scores[i] - (1 - lam) * sim_max[i], -order.index(i))

        best = max((i for i in order if cands[i].artist not in recent), default=None, key=value)
        if best is None:
            best = max(order, key=value)
        picked.append(best)
        order.remove(best)
        v = cands[best].vector
        for i in order:
            w = cands[i].vector
            if v is not None and w is not None and w.shape == v.shape:
                sim_max[i] = max(sim_max[i], float(np.dot(v.astype(np.float64), w)))
    return picked


def test_vectorised_mmr_matches_its_definition() -> None:
    from models.rerank import mmr

    rng = np.random.default_rng(5)
    for trial in range(60):
        m = int(rng.integers(1, 60))
        cands = []
        for i in range(m):
            kind = rng.integers(0, 3)  # mixed spaces and missing vectors, as in a real pool
            vec = None if kind == 0 else rng.normal(size=8 if kind == 1 else 16)
            if vec is not None:
                vec /= np.linalg.norm(vec)
            artist = None if rng.random() < 0.2 else f"a{rng.integers(0, 4)}"
            cands.append(Candidate(f"t{i}", artist=artist, vector=vec))
        scores = np.round(rng.random(m), 1)  # rounded: ties must break the same way
        n, lam, gap = (
            int(rng.integers(1, 25)),
            float(rng.choice([0.3, 0.7, 1.0])),
            int(rng.integers(0, 4)),
        )
        assert mmr(cands, scores, n, lam, gap) == _mmr_by_definition(cands, scores, n, lam, gap), (
            trial
        )


def test_mmr_on_the_head_picks_what_the_whole_pool_would() -> None:
    from models.rerank import _mmr_head, mmr

    rng = np.random.default_rng(5)
    expanded = 0
    for trial in range(150):
        m = int(rng.integers(1, 500))
        artists = int(rng.choice([1, 2, 5, 60]))
        cands = []
        for i in range(m):
            v = None if rng.random() < 0.05 else rng.normal(size=8).astype(np.float32)
            c = Candidate(f"t{i}", {"collab": 1.0}, artist=f"a{int(rng.integers(0, artists))}")
            c.vector = v
            cands.append(c)
        scores = rng.random(m) ** 2
        n = int(rng.integers(1, 30))
        lam = float(rng.choice([1.0, 0.8, 0.6, 0.0]))
        gap = int(rng.integers(0, 4))
        order = np.argsort(-scores, kind="stable")
        whole = _mmr_head(cands, order, lam * scores[order], m, n, lam, gap)
        assert whole is not None
        assert mmr(cands, scores, n, lam, gap) == [int(order[p]) for p in whole], trial
        head = min(m, 64)
        expanded += _mmr_head(cands, order, lam * scores[order], head, n, lam, gap) is None
    assert 0 < expanded < 150  # both paths ran: the head sufficed, and it had to grow
