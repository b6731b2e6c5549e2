"""``encore eval``: every model on one split, tuned on validation, measured on test.

Protocol: full ranking over all items; validation ranks with the user's train
items masked, test with train and validation items masked (RecBole's
full-sort history); models are fitted on train only and their settings (or
LightGCN's epoch) are chosen by validation NDCG@10. Rows:

* popularity, item-kNN, EASE, ALS, LightGCN, the tag model (content only);
* the hybrid: ALS plus weighted EASE, tag model and LightGCN on per-user
  z-scores, weights picked on validation;
* fold-in: the real-time taste vector of :mod:`models.state` (``event_weight``
  of each train interaction as an event, folded with ``fold_vector`` over the
  L2-normalised ALS item factors, the way the stream workers build it), ranked
  by inner product with those unit vectors and, second row, with the raw ALS
  item factors; compared with the true ALS user factors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from batch import served
from batch import tags as lfm_tags
from batch.als import ALS
from batch.cf import EASE, Blend, ItemKNN, Popularity, Recommender, TagKNN, tag_matrix
from batch.data import ALPHA_BY_SCHEME, TrainData, binary, from_dataset
from batch.foldin import taste_vectors
from batch.hybrid import tune_hybrid
from batch.lightgcn import LightGCN
from batch.metrics import Ranking, beyond_accuracy, evaluate, list_overlap
from batch.split import Split, dated_split, random_split, temporal_split
from models.ranking import RankConfig
from models.settings import BatchSettings
from models.state import FoldConfig

Log = Callable[[str], None]


@dataclass
class Row:
    """One model's result."""

    model: str
    test: dict[str, float]
    valid_ndcg: float
    params: dict[str, Any]
    fit_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalResult:
    """Everything the report shows."""

    dataset: str
    protocol: str
    seed: int
    quick: bool
    split: dict[str, Any]
    data: dict[str, Any]
    rows: list[Row]
    curve: list[dict[str, float]]
    notes: list[str]
    seconds: float = 0.0
    served: dict[str, Any] = field(default_factory=dict)


def load(dataset: str, path: Path | None) -> TrainData:
    """Last.fm 2k (from ``path``) or MovieLens 100k as training data."""
    if dataset == "lastfm-2k":
        from batch.datasets import read_lastfm

        return from_dataset(read_lastfm(path))  # type: ignore[arg-type]
    if dataset == "movielens-100k":
        from batch.datasets import read_movielens

        return from_dataset(read_movielens())
    raise ValueError(f"unknown dataset {dataset!r}")


def make_split(data: TrainData, protocol: str, seed: int, path: Path | None) -> Split:
    """The evaluation split (module doc of :mod:`batch.split`)."""
    if protocol == "random":
        return random_split(data.counts, seed)
    if protocol != "temporal":
        raise ValueError(f"unknown protocol {protocol!r}")
    if data.times is not None:
        return temporal_split(data.counts, data.times)
    if data.source == "lastfm-2k" and path is not None:
        a = lfm_tags.read_assignments(path, data.users, data.items)
        split = dated_split(data.counts, lfm_tags.first_tag_dates(a, data.counts.shape))
        split.info["dated_by"] = "first tag of the user on the artist (2005 or later)"
        return split
    raise ValueError(f"{data.source} has no timestamps for a temporal split")


def item_tag_matrix(data: TrainData, split: Split, path: Path | None) -> sp.csr_matrix:
    """Items x tags for the content model, without leaking held-out pairs."""
    if data.source == "lastfm-2k" and path is not None:
        a = lfm_tags.read_assignments(path, data.users, data.items)
        return lfm_tags.item_tags(a, data.counts.shape, binary(split.valid + split.test))
    lists = [list(data.catalog.get(t, {}).get("tags") or []) for t in data.items]
    return tag_matrix(lists)[0]


def _valid(model: Recommender, split: Split) -> float:
    return evaluate(model.scores, binary(split.train), split.valid).metrics.get("ndcg@10", 0.0)


def tune(
    name: str, grid: list[dict[str, Any]], build: Callable[..., Recommender], split: Split, log: Log
) -> tuple[Recommender, dict[str, Any], float, float]:
    """Fit every setting on train; keep the best by validation NDCG@10."""
    best: tuple[Recommender, dict[str, Any], float, float] | None = None
    for params in grid:
        started = time.perf_counter()
        model = build(**params)
        model.fit(split.train)
        seconds = time.perf_counter() - started
        score = _valid(model, split)
        log(f"{name} {params}: valid ndcg@10 {score:.4f} ({seconds:.1f}s)")
        if best is None or score > best[2]:
            best = (model, params, score, seconds)
    assert best is not None
    return best


def fold_in_scores(
    split: Split, data: TrainData, als: ALS, fold: FoldConfig
) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], np.ndarray]:
    """Scorers of the real-time taste vector (by name), and each user's vector.

    The vector is folded over unit item vectors, as the workers do. It is ranked
    two ways: by inner product with the unit vectors (cosine ranking, what an
    index over normalised factors returns) and with the raw ALS item factors,
    whose norms carry the item's share of the confidence mass (popularity).
    """
    raw = als.item_factors
    unit = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)
    taste = taste_vectors(split.train, data, unit, fold)
    scorers = {
        "fold-in (real-time vector)": lambda users: taste[users] @ unit.T,
        "fold-in, raw item factors": lambda users: taste[users] @ raw.T,
    }
    return scorers, taste


def run(
    dataset: str,
    protocol: str,
    *,
    path: Path | None,
    seed: int,
    quick: bool,
    settings: BatchSettings,
    fold: FoldConfig,
    rank: RankConfig | None = None,
    log: Log = lambda _m: None,
) -> EvalResult:
    """Train, tune and test every model; see the module doc."""
    started = time.perf_counter()
    data = load(dataset, path)
    split = make_split(data, protocol, seed, path)
    log(f"split {split.info}")
    chosen: dict[str, tuple[Recommender, dict[str, Any], float, float]] = {}
    chosen["popularity"] = tune("popularity", [{}], Popularity, split, log)
    knn_grid = [{"k": k, "shrink": s} for k in (200, 1000) for s in (50.0, 200.0)]
    if quick:
        knn_grid = [{"k": 1000, "shrink": 200.0}]
    chosen["item-kNN"] = tune("item-kNN", knn_grid, ItemKNN, split, log)
    ease_grid = [{"lam": 2000.0}] if quick else [{"lam": x} for x in (200.0, 500.0, 2000.0, 5000.0)]
    chosen["EASE"] = tune("EASE", ease_grid, EASE, split, log)
    als_base = {"factors": settings.factors, "iterations": settings.als_iterations, "seed": seed}
    scheme = settings.confidence
    alpha = settings.als_alpha or ALPHA_BY_SCHEME[scheme]
    als_grid = [{**als_base, "regularization": settings.als_regularization, "scheme": scheme}]
    if not quick:  # each scheme's alpha scaled like the configured one
        als_grid = [
            {**als_base, "regularization": r, "scheme": s, "alpha": m * _alpha(s, scheme, alpha)}
            for s in dict.fromkeys([scheme, "log"])
            for r in (3.0, 10.0, 30.0)
            for m in (0.5, 1.0, 2.0)
        ]
    chosen["ALS"] = tune("ALS", als_grid, ALS, split, log)
    tag_model = TagKNN(item_tag_matrix(data, split, path))
    chosen["tags (content)"] = tune("tags", [{}], lambda: tag_model, split, log)

    gcn = LightGCN(
        settings.lightgcn_factors,
        settings.lightgcn_layers,
        settings.lightgcn_lr,
        batch_size=settings.lightgcn_batch_size,
        epochs=20 if quick else settings.lightgcn_epochs,
        seed=seed,
        max_seconds=None if quick else 1800.0,
    )
    t0 = time.perf_counter()
    gcn.fit(split.train, split.valid, progress=_gcn_log(log))
    gcn_params = {**gcn.params(), "best_epoch": gcn.best_epoch}
    chosen["LightGCN"] = (gcn, gcn_params, gcn.best_valid, time.perf_counter() - t0)

    weights, valid_hybrid = tune_hybrid(
        {n: chosen[n][0] for n in ("ALS", "EASE", "tags (content)", "LightGCN")}, split, quick, log
    )
    hybrid = Blend({n: chosen[n][0] for n in weights}, weights).fit(split.train)
    chosen["hybrid"] = (hybrid, weights, valid_hybrid, sum(chosen[n][3] for n in weights))

    als = chosen["ALS"][0]
    assert isinstance(als, ALS)
    fold_fns, taste = fold_in_scores(split, data, als, fold)
    rows = []
    artists = None if data.source == "lastfm-2k" else data.item_artists()
    rankings: dict[str, Ranking] = {}
    for name, (model, params, valid, seconds) in chosen.items():
        ranking = evaluate(model.scores, split.train_valid, split.test)
        rankings[name] = ranking
        test = {**ranking.metrics, **beyond_accuracy(ranking.lists, split.train, artists)}
        rows.append(Row(name, test, valid, params, seconds))
        log(f"{name}: test {_short(test)}")
    fold_params = {"half_life_s": fold.half_life_s, "full_play": fold.full_play}
    for name, fn in fold_fns.items():
        folded = evaluate(fn, split.train_valid, split.test)
        users = folded.users
        cos = np.sum(_unit(taste[users]) * _unit(als.user_factors[users]), axis=1)
        extra = {
            "overlap@10_with_ALS": list_overlap(folded.lists, rankings["ALS"].lists),
            "mean_cosine_to_ALS_user_factors": float(np.mean(cos)),
        }
        test = {**folded.metrics, **beyond_accuracy(folded.lists, split.train, artists)}
        valid = evaluate(fn, binary(split.train), split.valid).metrics.get("ndcg@10", 0.0)
        rows.append(Row(name, test, valid, fold_params, 0.0, extra))
        log(f"{name}: test {_short(test)}")
    started_served = time.perf_counter()
    served_rows, tuned = served.evaluate_served(
        data,
        split.train,
        split.valid,
        split.test,
        als.user_factors,
        als.item_factors,
        hybrid,
        evaluate(als.scores, binary(split.train), split.valid).lists,
        rank or RankConfig(fold=fold),
        prior_strength=settings.policy_prior_strength,
        explore_share=settings.policy_explore_share,
        log=log,
    )
    rows += [Row(r.name, r.test, r.valid_ndcg, r.params, 0.0) for r in served_rows]
    return EvalResult(
        dataset=dataset,
        protocol=protocol,
        seed=seed,
        quick=quick,
        split=split.info,
        data=data.info,
        rows=rows,
        curve=[r for r in gcn.curve if "valid_ndcg@10" in r],
        notes=_notes(data, split),
        seconds=time.perf_counter() - started,
        served={
            "policy": tuned.policy.to_json(),
            "mmr_lambda": tuned.mmr_lambda,
            "base_weights": tuned.base,
            "unmeasured_arms": tuned.unmeasured,
            "prior_strength": settings.policy_prior_strength,
            "grid": tuned.grid,
            "context": tuned.context,
            "seconds": round(time.perf_counter() - started_served, 1),
        },
    )


def _alpha(scheme: str, configured: str, alpha: float) -> float:
    """``alpha`` of the configured scheme carried over to ``scheme`` by their default ratio."""
    return alpha * ALPHA_BY_SCHEME[scheme] / ALPHA_BY_SCHEME[configured]


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9))


def _short(m: dict[str, float]) -> str:
    return " ".join(f"{k} {m[k]:.4f}" for k in ("recall@10", "ndcg@10") if k in m)


def _gcn_log(log: Log) -> Callable[[int, dict[str, float]], None]:
    def report(epoch: int, row: dict[str, float]) -> None:
        if "valid_ndcg@10" in row:
            log(f"LightGCN epoch {epoch}: valid ndcg@10 {row['valid_ndcg@10']:.4f}")

    return report


def _notes(data: TrainData, split: Split) -> list[str]:
    notes = []
    if data.source == "lastfm-2k":
        notes.append("Items are artists, so artist diversity is not reported (1 by construction).")
    if split.info.get("protocol") == "temporal" and data.source == "lastfm-2k":
        notes.append(
            "Last.fm listening counts carry no time. Pairs are dated by the user's first tag "
            f"on the artist ({split.info.get('dated_share', 0):.0%} of pairs); the latest dated "
            "tenth is test, the tenth before it validation, every undated pair train. Tagging "
            "time is not listening time, and tagged artists lean popular: a sanity check, not a "
            "benchmark."
        )
    return notes
