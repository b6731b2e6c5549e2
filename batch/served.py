"""What the API serves, evaluated: the personal-recommendation code run in-process.

For every user of a split this builds what the API would see (a
:class:`models.serving.Bundle` of the models fitted on train, the user's
state folded from their events with :func:`models.state.apply_interaction`)
and runs :mod:`models.ranking`, the code the API runs: every candidate
source, the hybrid score under an arm's weights, MMR, artist spacing and the
history filter. Lists are scored like the model rows (full ranking; an
already-heard or missing item is a miss).

:func:`tune_policy` replaces hand-set arm weights: a base blend is chosen on
validation NDCG@10 (coverage kept at least ALS's), each arm is the base
tilted toward its own signal, arms under 90% of the best arm's validation
NDCG@10 (or whose signal the data lacks) are capped at an exploration share,
and each arm's validation quality becomes its prior.

:func:`context_check` tests whether a contextual policy (an arm per time of day)
would serve better lists than the single best arm; the policy uses context only
if it does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp

from batch.cf import Recommender
from batch.data import TrainData
from batch.foldin import EPOCH, fold_states
from batch.hybrid import top_lists
from batch.metrics import beyond_accuracy, rank_metrics
from models import ranking
from models.bandit import (
    ARMS,
    SIGNALS,
    Policy,
    capped_from_scores,
    choose,
    posteriors,
    priors_from_scores,
)
from models.ranking import Prepared, RankConfig, Request
from models.rerank import Filters
from models.serving import Bundle, make_collab, make_toplists

Log = Callable[[str], None]
REALTIME_GRID = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75)
POPULARITY_GRID = (0.0, 0.03, 0.1)
LAMBDA_GRID = (1.0, 0.95, 0.9, 0.8)
TILT = {
    "collab-heavy": {},
    "balanced": {"realtime": 0.25},
    "realtime-heavy": {"realtime": 0.6},
    "content-heavy": {"content": 0.5},
    "discovery": {"trending": 0.15, "fresh": 0.25},
}
"""Each arm's lean, added to the tuned base blend (in shares of the base's total)."""


def bundle_from_models(
    data: TrainData,
    train: sp.csr_matrix,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    blend: Recommender | None,
    k: int = 200,
) -> Bundle:
    """A bundle of models fitted on ``train``: ALS factors and the hybrid's top-k lists
    (each user's train items excluded, as the published hybrid excludes them)."""
    artists = data.item_artists()
    if data.source == "lastfm-2k":  # items are artists
        artists = list(data.items)
    pop = np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel()
    collab = make_collab(
        "eval-als", data.items, item_factors, data.users, user_factors, pop, artists, "eval-als"
    )
    hybrid = None
    if blend is not None:
        items, scores = top_lists(blend, train, k)
        hybrid = make_toplists("eval-hybrid", list(data.items), list(data.users), items, scores)
    return Bundle(collab=collab, hybrid=hybrid)


@dataclass
class Stage:
    """One evaluation stage: users, their prepared pools and their held-out items."""

    users: np.ndarray
    prepared: list[Prepared]
    requests: list[Request]
    target: sp.csr_matrix


def prepare_stage(
    bundle: Bundle,
    data: TrainData,
    history: Sequence[sp.csr_matrix],
    target: sp.csr_matrix,
    cfg: RankConfig,
) -> Stage:
    """States folded from ``history``, candidate pools prepared, for users with targets."""
    assert bundle.collab is not None
    target = target.tocsr()
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    states = fold_states([h.tocsr() for h in history], data, bundle.collab, cfg.fold, users)
    now_ms = int((EPOCH + timedelta(days=1)).timestamp() * 1000)
    prepared, requests = [], []
    for u in users:
        req = Request(data.users[u], states[int(u)], {}, [], now_ms)
        pool, _ = ranking.candidates(bundle, req, {}, cfg)
        prepared.append(ranking.prepare(bundle, req, pool, {}))
        requests.append(req)
    return Stage(users, prepared, requests, target)


def served_lists(
    stage: Stage,
    row_of: Mapping[str, int],
    pick: Callable[[int], tuple[Mapping[str, float], float]],
    cfg: RankConfig,
    n: int = 20,
) -> np.ndarray:
    """(users, n) item columns of the served lists, -1 where a list ran short."""
    out = np.full((len(stage.users), n), -1, dtype=np.int64)
    for i, prep in enumerate(stage.prepared):
        weights, lam = pick(i)
        ranked = ranking.rank(
            prep,
            weights,
            n=n,
            filters=Filters(),
            lam=lam,
            artist_gap=cfg.artist_gap,
            taste_weight=cfg.taste_weight,
        )
        cols = [row_of.get(r.candidate.track_id, -1) for r in ranked]
        out[i, : len(cols)] = cols
    return out


def list_metrics(
    lists: np.ndarray,
    stage: Stage,
    train: sp.csr_matrix,
    artists: Sequence[str | None] | None,
    *,
    beyond: bool = True,
    per_user: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Accuracy of served lists against the stage's targets, and beyond-accuracy measures
    (only coverage@10 without ``beyond``: what tuning needs, at a fraction of the cost).
    ``per_user``: the lists' :func:`_per_user` metrics when the caller has them."""
    per_user = per_user if per_user is not None else _per_user(lists, stage)
    out = {m: float(v.mean()) for m, v in per_user.items()}
    out["users"] = float(len(stage.users))
    full = lists[(lists[:, :10] >= 0).all(axis=1)]
    if beyond:
        out.update(beyond_accuracy(full, train, artists))
    else:
        out["coverage@10"] = float(np.unique(full[:, :10]).size / train.shape[1])
    out["short_lists@10"] = float(len(lists) - len(full))
    return out


def _per_user(lists: np.ndarray, stage: Stage) -> dict[str, np.ndarray]:
    """Each user's rank metrics (recall@k, ndcg@k, ...) of the served lists."""
    t = stage.target[stage.users]
    safe = np.where(lists >= 0, lists, 0)
    hits = (np.asarray(t[np.arange(len(stage.users))[:, None], safe].todense()) > 0) & (lists >= 0)
    return rank_metrics(hits, np.diff(t.indptr), [k for k in (10, 20) if k <= lists.shape[1]])


def _weights(realtime: float, popularity: float) -> dict[str, float]:
    w = {s: 0.0 for s in SIGNALS}
    w.update(collab=1.0, realtime=realtime, popularity=popularity)
    total = sum(w.values())
    return {s: round(v / total, 4) for s, v in w.items()}


def arm_weights(base: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Every arm: the base blend plus its lean, renormalised to sum 1."""
    out = {}
    for arm in ARMS:
        w = dict(base)
        for s, share in TILT[arm].items():
            w[s] = w.get(s, 0.0) + share
        total = sum(w.values())
        out[arm] = {s: round(v / total, 4) for s, v in w.items()}
    return out


@dataclass
class Tuned:
    """The outcome of tuning on validation."""

    policy: Policy
    mmr_lambda: float
    base: dict[str, float]
    valid: dict[str, dict[str, float]]  # arm -> validation metrics
    grid: list[dict[str, Any]]
    unmeasured: list[str]
    valid_mix: dict[str, float] = field(default_factory=dict)  # the policy at its priors
    valid_users: dict[str, np.ndarray] = field(default_factory=dict)  # arm -> users' ndcg@10
    valid_stage_users: np.ndarray | None = None
    context: dict[str, Any] = field(default_factory=dict)  # see context_check


def tune_policy(
    stage: Stage,
    row_of: Mapping[str, int],
    train: sp.csr_matrix,
    artists: Sequence[str | None] | None,
    cfg: RankConfig,
    *,
    min_coverage: float,
    present: set[str],
    prior_strength: float,
    explore_share: float,
    log: Log = lambda _m: None,
) -> Tuned:
    """Choose the base blend and MMR weight on validation, build the arms and their priors.

    ``present`` names the signals the validation data has; an arm leaning on a signal
    it lacks cannot be measured, so it is capped with the weak arms.
    """
    grid: list[dict[str, Any]] = []

    def run(weights: Mapping[str, float], lam: float) -> dict[str, float]:
        lists = served_lists(stage, row_of, lambda _i: (weights, lam), cfg)
        return list_metrics(lists, stage, train, artists, beyond=False)

    best: tuple[float, dict[str, float], float] | None = None
    for rt, pop in itertools.product(REALTIME_GRID, POPULARITY_GRID):
        w = _weights(rt, pop)
        m = run(w, 1.0)
        grid.append({"weights": w, "mmr_lambda": 1.0, "ndcg@10": m["ndcg@10"]})
        log(f"served base realtime={rt} popularity={pop}: valid ndcg@10 {m['ndcg@10']:.4f}")
        if best is None or m["ndcg@10"] > best[0]:
            best = (m["ndcg@10"], w, 1.0)
    assert best is not None
    base = best[1]
    chosen: tuple[float, float] | None = None
    for lam in LAMBDA_GRID:
        m = run(base, lam)
        ok = m.get("coverage@10", 0.0) >= min_coverage
        grid.append(
            {
                "weights": base,
                "mmr_lambda": lam,
                "ndcg@10": m["ndcg@10"],
                "coverage@10": m.get("coverage@10"),
                "meets_coverage": ok,
            }
        )
        log(
            f"served mmr lambda {lam}: valid ndcg@10 {m['ndcg@10']:.4f} "
            f"coverage@10 {m.get('coverage@10', 0):.4f}{'' if ok else ' (under ALS coverage)'}"
        )
        if ok and (chosen is None or m["ndcg@10"] > chosen[0]):
            chosen = (m["ndcg@10"], lam)
    lam = chosen[1] if chosen is not None else max(LAMBDA_GRID[1:])
    arms = arm_weights(base)
    valid, valid_users = {}, {}
    for a, w in arms.items():
        lists = served_lists(stage, row_of, _fixed(w, lam), cfg)
        per_user = _per_user(lists, stage)
        valid[a] = list_metrics(lists, stage, train, artists, beyond=False, per_user=per_user)
        valid_users[a] = per_user["ndcg@10"]
    scores = {a: m["ndcg@10"] for a, m in valid.items()}
    unmeasured = [a for a in ARMS if set(TILT[a]) - present]
    capped = capped_from_scores(scores) | set(unmeasured)  # under 90% of the best arm
    policy = Policy(
        arms=arms,
        priors=priors_from_scores(scores, strength=prior_strength),
        capped=capped,
        explore_share=explore_share,
    )
    for a in ARMS:
        log(f"arm {a}: valid ndcg@10 {scores[a]:.4f}{' (capped)' if a in capped else ''}")
    return Tuned(policy, lam, base, valid, grid, unmeasured, valid_users=valid_users)


def prior_mix_lists(
    stage: Stage, row_of: Mapping[str, int], tuned: Tuned, bundle: Bundle, cfg: RankConfig
) -> tuple[np.ndarray, dict[str, int]]:
    """The lists a fresh deployment serves: each user's arm drawn by the policy at its
    priors (no live feedback yet), seeded as the API seeds it."""
    post = posteriors([], tuned.policy.arms, tuned.policy.priors)
    versions = bundle.versions()
    pulls: dict[str, int] = {}

    def pick(i: int) -> tuple[Mapping[str, float], float]:
        req = stage.requests[i]
        arm, _p = choose(tuned.policy, post, ranking.draw_seed(req.user_id, req.state, versions))
        pulls[arm] = pulls.get(arm, 0) + 1
        return tuned.policy.arms[arm], tuned.mmr_lambda

    return served_lists(stage, row_of, pick, cfg), pulls


def _fixed(
    weights: Mapping[str, float], lam: float
) -> Callable[[int], tuple[Mapping[str, float], float]]:
    return lambda _i: (weights, lam)


@dataclass
class ServedRow:
    """One served configuration's result (the evaluation wraps it in its row type)."""

    name: str
    test: dict[str, float]
    valid_ndcg: float
    params: dict[str, Any]


def tune_on_split(
    bundle: Bundle,
    data: TrainData,
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    als_valid_lists: np.ndarray,
    cfg: RankConfig,
    *,
    prior_strength: float,
    explore_share: float,
    log: Log = lambda _m: None,
) -> Tuned:
    """Serve every validation user (state from their train events) and tune the policy;
    coverage is kept at least that of ALS's own validation lists."""
    artists = bundle.collab.artists if bundle.collab is not None else None
    row_of = {t: i for i, t in enumerate(data.items)}
    stage = prepare_stage(bundle, data, [train], valid, cfg)
    log(f"served: validation pools for {len(stage.users)} users")
    min_cov = beyond_accuracy(als_valid_lists, train, artists).get("coverage@10", 0.0)
    tuned = tune_policy(
        stage,
        row_of,
        train,
        artists,
        cfg,
        min_coverage=min_cov,
        present={"collab", "realtime", "popularity"},
        prior_strength=prior_strength,
        explore_share=explore_share,
        log=log,
    )
    tuned.valid_stage_users = stage.users
    lists, _pulls = prior_mix_lists(stage, row_of, tuned, bundle, cfg)
    tuned.valid_mix = list_metrics(lists, stage, train, _measured(data, artists))
    log(f"served prior mix: valid ndcg@10 {tuned.valid_mix['ndcg@10']:.4f}")
    return tuned


DAYPARTS = ("night", "morning", "afternoon", "evening")
"""Time-of-day buckets of six hours each, from 00:00 UTC."""
MIN_BUCKET_USERS = 30
"""A bucket with fewer validation users keeps the single best arm."""
BOOTSTRAP = 2_000


def dayparts(times: sp.csr_matrix | None, target: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """Each user's daypart (index into ``DAYPARTS``): the UTC hour of their first
    held-out interaction, the moment a request would have been served; -1 when unknown."""
    out = np.full(len(users), -1, dtype=np.int64)
    if times is None:
        return out
    t, tg = times.tocsr(), target.tocsr()
    for i, u in enumerate(users):
        items = tg.indices[tg.indptr[u] : tg.indptr[u + 1]]
        when = np.asarray(t[int(u), items].todense()).ravel()
        when = when[when > 0]
        if when.size:
            out[i] = int(when.min() // 3600 % 24) // 6
    return out


def context_check(
    tuned: Tuned,
    valid_parts: np.ndarray,
    test_users: Mapping[str, np.ndarray],
    test_parts: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Would a time-of-day contextual policy serve better lists than the single best arm?

    On validation, each daypart gets the uncapped arm with the best mean NDCG@10 of
    its users (a daypart with under ``MIN_BUCKET_USERS`` users keeps the leader, the
    arm the policy leads with at its priors). On test, every user is served their
    daypart's arm; the result is the mean NDCG@10 difference against serving everyone
    the leader, with a 95% paired bootstrap interval. The context helps only if the
    interval is above zero. Measurable only where interactions have a time of day.
    """
    known = int((test_parts >= 0).sum())
    if known == 0 or int((valid_parts >= 0).sum()) == 0:
        return {"measurable": False, "reason": "the interactions have no time of day"}
    policy = tuned.policy
    uncapped = [a for a in policy.arms if a not in policy.capped]
    leader = max(uncapped, key=lambda a: policy.priors[a].mean)
    parts = {}
    choice = {}
    for b, name in enumerate(DAYPARTS):
        mask = valid_parts == b
        means = {
            a: float(tuned.valid_users[a][mask].mean()) if mask.any() else 0.0 for a in uncapped
        }
        arm = max(uncapped, key=means.__getitem__) if mask.sum() >= MIN_BUCKET_USERS else leader
        choice[b] = arm
        parts[name] = {
            "valid_users": int(mask.sum()),
            "test_users": int((test_parts == b).sum()),
            "arm": arm,
            "valid_ndcg@10": {a: round(v, 4) for a, v in means.items()},
        }
    base = test_users[leader]
    ctx = np.array(
        [test_users[choice.get(int(b), leader)][i] for i, b in enumerate(test_parts)],
        dtype=np.float64,
    )
    diff = ctx - base
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, diff.size, (BOOTSTRAP, diff.size))].mean(axis=1)
    lo, hi = (float(x) for x in np.quantile(boots, [0.025, 0.975]))
    return {
        "measurable": True,
        "context": "time of day (UTC hour of the user's first held-out interaction)",
        "leader": leader,
        "dayparts": parts,
        "leader_test_ndcg@10": round(float(base.mean()), 4),
        "contextual_test_ndcg@10": round(float(ctx.mean()), 4),
        "delta_ndcg@10": round(float(diff.mean()), 5),
        "ci95": [round(lo, 5), round(hi, 5)],
        "helps": lo > 0,
    }


def _measured(data: TrainData, artists: Sequence[str | None] | None) -> Any:
    """Artists for the diversity measure: none where items are artists (Last.fm 2k)."""
    return None if data.source == "lastfm-2k" else artists


def evaluate_served(
    data: TrainData,
    train: sp.csr_matrix,
    valid: sp.csr_matrix,
    test: sp.csr_matrix,
    als_user: np.ndarray,
    als_item: np.ndarray,
    blend: Recommender | None,
    als_valid_lists: np.ndarray,
    cfg: RankConfig,
    *,
    prior_strength: float,
    explore_share: float,
    log: Log = lambda _m: None,
) -> tuple[list[ServedRow], Tuned]:
    """Tune the arms on validation, then serve every test user under each arm and under
    the policy at its priors."""
    bundle = bundle_from_models(data, train, als_user, als_item, blend)
    artists = bundle.collab.artists if bundle.collab is not None else None
    row_of = {t: i for i, t in enumerate(data.items)}
    tuned = tune_on_split(
        bundle,
        data,
        train,
        valid,
        als_valid_lists,
        cfg,
        prior_strength=prior_strength,
        explore_share=explore_share,
        log=log,
    )
    t_stage = prepare_stage(bundle, data, [train, valid], test, cfg)
    log(f"served: test pools for {len(t_stage.users)} users")
    rows = []
    test_users = {}
    for arm, weights in tuned.policy.arms.items():
        lists = served_lists(t_stage, row_of, _fixed(weights, tuned.mmr_lambda), cfg)
        per_user = _per_user(lists, t_stage)
        test_users[arm] = per_user["ndcg@10"]
        capped = arm in tuned.policy.capped
        rows.append(
            ServedRow(
                f"served: {arm}{' (capped)' if capped else ''}",
                list_metrics(lists, t_stage, train, _measured(data, artists), per_user=per_user),
                tuned.valid[arm]["ndcg@10"],
                {
                    "weights": {s: w for s, w in weights.items() if w},
                    "mmr_lambda": tuned.mmr_lambda,
                },
            )
        )
        log(f"served {arm}: test ndcg@10 {rows[-1].test['ndcg@10']:.4f}")
    lists, pulls = prior_mix_lists(t_stage, row_of, tuned, bundle, cfg)
    rows.append(
        ServedRow(
            "served: policy at its prior",
            list_metrics(lists, t_stage, train, _measured(data, artists)),
            tuned.valid_mix["ndcg@10"],
            {"pulls": pulls, "explore_share": explore_share, "prior_strength": prior_strength},
        )
    )
    log(f"served prior mix: test ndcg@10 {rows[-1].test['ndcg@10']:.4f} pulls {pulls}")
    assert tuned.valid_stage_users is not None
    tuned.context = context_check(
        tuned,
        dayparts(data.times, valid, tuned.valid_stage_users),
        test_users,
        dayparts(data.times, test, t_stage.users),
    )
    log(f"served context check: {tuned.context}")
    return rows, tuned
