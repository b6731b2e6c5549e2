"""Item rows per bundle and the columnar candidate pool (pure)."""

from __future__ import annotations

import numpy as np

from models.pool import PoolBuilder
from models.serving import Bundle, CatalogTrack, make_collab


def _collab(ids: list[str], artists: list[str | None], seed: int) -> object:
    rng = np.random.default_rng(seed)
    return make_collab(
        "eval-als",  # the same version name for different models, as evaluations do
        ids,
        rng.normal(size=(len(ids), 8)),
        ["u0"],
        rng.normal(size=(1, 8)),
        np.arange(len(ids), dtype=np.float32),
        artists,
    )


def test_item_rows_follow_the_models_not_their_version_names() -> None:
    a = Bundle(collab=_collab(["t0", "t1", "t2"], ["x", "y", None], 0))  # type: ignore[arg-type]
    b = Bundle(collab=_collab(["s0", "s1"], ["z", "z"], 1))  # type: ignore[arg-type]
    assert a.items.ids == ["t0", "t1", "t2"]
    assert b.items.ids == ["s0", "s1"]
    assert [b.items.facts.artists.values[c] for c in b.items.facts.artist] == ["z", "z"]
    assert a.items.facts.artist[2] == -1  # no artist known
    assert list(a.items.space) == [0, 0, 0]  # every row has its ALS vector for diversity


def test_catalog_rows_describe_tracks_no_artifact_knows() -> None:
    bundle = Bundle(collab=_collab(["t0", "t1"], ["x", "y"], 2))  # type: ignore[arg-type]
    out = PoolBuilder(bundle.items)
    out.add("collab", np.array([1, 0]), {"collab": np.array([0.5, 0.4])})
    out.add_ids("fresh", ["new1", "t1", "new2"], {"fresh": np.array([1.0, 0.9, 0.8])})
    pool = out.build()
    assert pool.track_ids(range(len(pool))) == ["t1", "t0", "new1", "new2"]
    assert pool.needs_catalog() == ["t1", "t0", "new1", "new2"]  # no content model: all
    meta = {"artist": "Zed", "genre": "Dub", "year": 1999, "is_music": False}
    catalog = {"new1": CatalogTrack("new1", meta, None, None, "", None, None, 0)}
    pool.join(catalog)
    assert pool.artist_of(2) == "name:zed"
    assert pool.genre_of(2) == "Dub"
    assert pool.year_of(2) == 1999
    assert not pool.music[2]
    assert pool.artist_of(0) == "y"  # from the collaborative model (no catalog row)
    assert pool.artist_of(3) is None
    assert pool.genre_of(3) is None
    assert pool.music[3]
    assert np.isnan(pool.signals["collab"][2])
    assert pool.signals["fresh"][0] == 0.9
    assert pool.describe() == {"collab": 2, "fresh": 3}
