"""Reranking and candidate scoring (pure)."""

from __future__ import annotations

import itertools

import numpy as np

from api.bundle import mips_augment
from models.pool import PoolBuilder, facts_of, make_items
from models.rerank import Context, Filters, normalise, rerank
from tests.poolkit import Track, diversity_of, pool_of


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
    assert list(normalise(np.zeros(3))) == [0.0, 0.0, 0.0]
    assert list(normalise(np.array([0.0, 1.0, 2.0]))) == [0.0, 0.5, 1.0]
    assert list(normalise(np.array([np.nan, 3.0, 3.0]))) == [0.0, 1.0, 1.0]


def test_filters_skips_and_artist_spacing() -> None:
    tracks = [
        Track(
            f"t{i}",
            {"collab": 10 - i},
            ["collab"],
            artist=f"a{i % 3}",
            genre="Jazz" if i % 2 else "rock",
            year=1990 + i,
            link="dead" if i == 1 else "valid",
        )
        for i in range(10)
    ]
    cands = pool_of(tracks)
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
    assert {r.candidate.genre for r in jazz} == {"Jazz"}  # as the metadata spells it
    assert min(r.candidate.year or 0 for r in jazz) >= 1993


def _mmr_by_definition(
    cands: list[Track], scores: np.ndarray, n: int, lam: float, gap: int
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
            cands.append(Track(f"t{i}", artist=artist, vector=vec))
        scores = np.round(rng.random(m), 1)  # rounded: ties must break the same way
        n, lam, gap = (
            int(rng.integers(1, 25)),
            float(rng.choice([0.3, 0.7, 1.0])),
            int(rng.integers(0, 4)),
        )
        got = mmr(diversity_of(cands), scores, n, lam, gap)
        assert got == _mmr_by_definition(cands, scores, n, lam, gap), trial


def test_mmr_on_the_head_picks_what_the_whole_pool_would() -> None:
    from models.rerank import _mmr_head, mmr

    rng = np.random.default_rng(5)
    expanded = 0
    for trial in range(150):
        m = int(rng.integers(1, 500))
        artists = int(rng.choice([1, 2, 5, 60]))
        cands = [
            Track(
                f"t{i}",
                artist=f"a{int(rng.integers(0, artists))}",
                vector=None if rng.random() < 0.05 else rng.normal(size=8).astype(np.float32),
            )
            for i in range(m)
        ]
        div = diversity_of(cands)
        scores = rng.random(m) ** 2
        n = int(rng.integers(1, 30))
        lam = float(rng.choice([1.0, 0.8, 0.6, 0.0]))
        gap = int(rng.integers(0, 4))
        order = np.argsort(-scores, kind="stable")
        whole = _mmr_head(div, order, lam * scores[order], m, n, lam, gap)
        assert whole is not None
        assert mmr(div, scores, n, lam, gap) == [int(order[p]) for p in whole], trial
        head = min(m, 64)
        expanded += _mmr_head(div, order, lam * scores[order], head, n, lam, gap) is None
    assert 0 < expanded < 150  # both paths ran: the head sufficed, and it had to grow


def _merge_by_definition(
    groups: list[tuple[str, list[tuple[str, float]], str | None]],
) -> dict[str, tuple[dict[str, float], list[str], str | None]]:
    """Merging source groups track by track: every signal (its largest value), every
    source and the first seed, in first-seen order."""
    out: dict[str, tuple[dict[str, float], list[str], str | None]] = {}
    for source, hits, seed in groups:
        for track, score in hits:
            signals, sources, first = out.setdefault(track, ({}, [], None))
            signals[source] = max(score, signals.get(source, score))
            if source not in sources:
                sources.append(source)
            out[track] = (signals, sources, first or seed)
    return out


def test_pool_merge_matches_merging_track_by_track() -> None:
    rng = np.random.default_rng(11)
    names = ["collab", "realtime", "content", "trending", "fresh"]
    for trial in range(80):
        ids = [f"t{i}" for i in range(int(rng.integers(1, 40)))]
        known = int(rng.integers(0, len(ids) + 1))  # the rest only the catalog knows
        items = make_items(ids[:known], facts_of([{} for _ in ids[:known]]))
        builder = PoolBuilder(items)
        groups = []
        for _ in range(int(rng.integers(0, 8))):
            source = str(rng.choice(names))
            picks = [ids[int(i)] for i in rng.integers(0, len(ids), size=int(rng.integers(0, 12)))]
            scores = np.round(rng.normal(size=len(picks)), 2)
            seed = f"s{int(rng.integers(0, 3))}" if source == "content" else None
            groups.append((source, list(zip(picks, scores.tolist(), strict=True)), seed))
            if source in ("trending", "fresh"):
                builder.add_ids(source, picks, {source: scores})
            else:
                inside = [p for p in picks if p in items.row]
                keep = [i for i, p in enumerate(picks) if p in items.row]
                builder.add(source, items.rows(inside), {source: scores[keep]}, seed=seed)
                groups[-1] = (source, [groups[-1][1][i] for i in keep], seed)
        pool = builder.build()
        want = _merge_by_definition(groups)
        assert pool.track_ids(range(len(pool))) == list(want), trial
        for i, (track, (signals, sources, seed)) in enumerate(want.items()):
            got = {s: float(c[i]) for s, c in pool.signals.items() if not np.isnan(c[i])}
            assert got == signals, (trial, track)
            assert pool.source_names(i) == sorted(sources, key=pool.sources.index), (trial, track)
            assert (pool.seeds[pool.seed[i]] if pool.seed[i] >= 0 else None) == seed
