"""The blend-weight bandit: arms, the reward of a piece of feedback, Thompson sampling.

Each arm is a set of blend weights over the recommendation signals. Feedback on
a recommended track updates that arm's Beta posterior:

============================  ======  ===========================================
feedback                      reward  why
============================  ======  ===========================================
like                          1       explicit positive
play, completion >= full      1       listened through
play, completion c < full     c       partial credit for partial listening
skip                          0       explicit negative
dislike                       0       explicit negative
unlike                        none    corrects an earlier like; no new evidence
============================  ======  ===========================================

A reward r adds r to alpha and 1 - r to beta (fractional Bernoulli), starting
from the arm's prior (Beta(1, 1) unless the policy has one from offline scores).
Sums are kept in Redis as integers in millionths (exact and order-independent,
so live and replayed state agree), per interaction partition; readers add the
partitions up.

The policy (:class:`Policy`, stored in an artifact manifest as plain JSON):

* **Priors from offline evaluation.** :func:`priors_from_scores` turns each arm's
  validation quality (e.g. NDCG@10 of the list it serves) into a Beta prior, so
  live traffic starts from what evaluation already knows instead of Beta(1, 1).
* **Bounded exploration.** With probability ``1 - explore_share`` the policy
  exploits: it serves the *leader*, the uncapped arm with the highest posterior
  mean; otherwise it explores with a Thompson draw over the challengers (every
  other arm). So the challengers get ``explore_share`` of the choices together,
  the ones most likely to be better most of it, and ``explore_share = 1`` is
  plain Thompson sampling over all arms. Arms whose validation
  quality is under ``CAP_BELOW`` of the best are *capped*: they never lead, so
  they are only served when exploring, whatever their posteriors say.
* **Deterministic refresh.** :func:`choose` draws only from an RNG seeded by a
  stable hash of a caller-given seed (user, session, state version, model
  versions), so reloading a page with nothing new gives the same arm.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

REWARD_SCALE = 1_000_000
"""Reward sums are stored as integers in units of 1/REWARD_SCALE."""

SIGNALS = ("collab", "realtime", "content", "trending", "fresh", "popularity")
"""Normalised signals the hybrid score blends."""

ARMS: dict[str, dict[str, float]] = {
    "collab-heavy": {
        "collab": 0.55,
        "realtime": 0.25,
        "content": 0.1,
        "trending": 0.05,
        "fresh": 0.0,
        "popularity": 0.05,
    },
    "balanced": {
        "collab": 0.35,
        "realtime": 0.3,
        "content": 0.15,
        "trending": 0.1,
        "fresh": 0.05,
        "popularity": 0.05,
    },
    "realtime-heavy": {
        "collab": 0.2,
        "realtime": 0.55,
        "content": 0.15,
        "trending": 0.05,
        "fresh": 0.05,
        "popularity": 0.0,
    },
    "content-heavy": {
        "collab": 0.15,
        "realtime": 0.2,
        "content": 0.5,
        "trending": 0.05,
        "fresh": 0.1,
        "popularity": 0.0,
    },
    "discovery": {
        "collab": 0.2,
        "realtime": 0.2,
        "content": 0.2,
        "trending": 0.15,
        "fresh": 0.25,
        "popularity": 0.0,
    },
}
"""Weight arms. Names are part of the event contract (``context.arm``)."""


def reward(event_type: str, completion: float | None, full_play: float) -> float | None:
    """Reward of one feedback event (see the module table), or None for no evidence."""
    if event_type == "like":
        return 1.0
    if event_type == "play":
        c = 1.0 if completion is None else completion
        return 1.0 if c >= full_play else max(0.0, min(1.0, c))
    if event_type in ("skip", "dislike"):
        return 0.0
    return None


@dataclass(frozen=True, slots=True)
class Posterior:
    """Beta posterior of one arm."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        """Expected reward."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def pulls(self) -> float:
        """Feedback events seen beyond Beta(1, 1) (fractional rewards count once each).

        With an informative prior this includes the prior's pseudo-observations.
        """
        return self.alpha + self.beta - 2.0


FLAT = Posterior(1.0, 1.0)
"""The uninformative prior, Beta(1, 1)."""

CAP_BELOW = 0.9
"""Arms whose offline score is under this fraction of the best are capped."""

DEFAULT_EXPLORE_SHARE = 0.05
"""Default exploration share of a policy built from offline scores."""

THOMPSON = 1.0
"""``explore_share`` of plain Thompson sampling (every choice a draw)."""

_WEAK_STRENGTH = 2.0
"""Pseudo-observations of the prior of an arm with no offline score."""

PRIOR_BASE = 0.5
"""The mean :func:`priors_from_scores` gives the best arm (the scale live rewards replace)."""

_MEAN_FLOOR = 0.01
"""Prior means are kept within [_MEAN_FLOOR, 1 - _MEAN_FLOOR] (a Beta needs > 0)."""


def posteriors(
    sums: Sequence[Mapping[Any, Any]],
    arms: Iterable[str] = ARMS,
    priors: Mapping[str, Posterior] | None = None,
) -> dict[str, Posterior]:
    """Posteriors from per-partition ``<arm>:a`` / ``<arm>:b`` reward sums.

    The live sums (integers in millionths) are added to each arm's prior:
    ``priors[arm]`` when given, else Beta(1, 1).

    Given priors are first put on the live reward scale. Offline evaluation knows
    how the arms compare, not how often listeners will reward a list, so
    :func:`priors_from_scores` centres them on ``PRIOR_BASE`` (0.5). Each given
    prior's mean is scaled by ``r / PRIOR_BASE``, ``r`` being the pooled live
    reward rate of all arms (Beta(1, 1) on the totals), its strength kept.
    Without live data ``r`` is 0.5 and the priors are as published; with it,
    the arm that leads on offline quality does not lose its lead just because
    real rewards come at, say, 0.3 while the challengers' priors still say 0.5.
    """
    names = list(arms)
    a = {n: 0 for n in names}
    b = {n: 0 for n in names}
    for part in sums:
        for k, v in part.items():
            key = k.decode() if isinstance(k, bytes) else k
            name, _, side = key.rpartition(":")
            if side == "a" and name in a:
                a[name] += int(v)
            elif side == "b" and name in b:
                b[name] += int(v)
    prior = dict(priors or {})
    if prior:
        total_a = sum(a.values()) / REWARD_SCALE
        total_b = sum(b.values()) / REWARD_SCALE
        scale = (total_a + 1.0) / (total_a + total_b + 2.0) / PRIOR_BASE
        prior = {arm: _rescaled(p, scale) for arm, p in prior.items()}
    out = {}
    for n in names:
        p = prior.get(n, FLAT)
        out[n] = Posterior(p.alpha + a[n] / REWARD_SCALE, p.beta + b[n] / REWARD_SCALE)
    return out


def _rescaled(p: Posterior, scale: float) -> Posterior:
    """``p`` with its mean times ``scale`` (kept inside the floor), same strength."""
    if scale == 1.0:
        return p
    n = p.alpha + p.beta
    mean = min(max(p.mean * scale, _MEAN_FLOOR), 1 - _MEAN_FLOOR)
    return Posterior(n * mean, n * (1 - mean))


def priors_from_scores(
    scores: Mapping[str, float],
    *,
    strength: float,
    base: float = PRIOR_BASE,
    arms: Iterable[str] = ARMS,
) -> dict[str, Posterior]:
    """Beta priors for ``arms`` from offline validation scores (higher is better).

    An arm's prior mean is ``base * score / best score`` (the best arm gets
    ``base``), worth ``strength`` pseudo-observations. An arm without a score
    gets a weak prior: mean ``base``, 2 pseudo-observations (Beta(1, 1) when
    ``base`` is 0.5), so it is explored rather than presumed bad.
    """
    if not (math.isfinite(strength) and strength > 0):
        raise ValueError(f"strength must be a positive number, got {strength!r}")
    if not (math.isfinite(base) and 0 < base < 1):
        raise ValueError(f"base must be in (0, 1), got {base!r}")
    for arm, s in scores.items():
        if not (math.isfinite(s) and s >= 0):
            raise ValueError(f"score of arm {arm!r} must be finite and >= 0, got {s!r}")
    best = max(scores.values(), default=0.0)
    out = {}
    for arm in arms:
        if arm in scores and best > 0:
            mean = min(max(base * scores[arm] / best, _MEAN_FLOOR), 1 - _MEAN_FLOOR)
            out[arm] = Posterior(strength * mean, strength * (1 - mean))
        else:
            out[arm] = Posterior(_WEAK_STRENGTH * base, _WEAK_STRENGTH * (1 - base))
    return out


def capped_from_scores(scores: Mapping[str, float], cap_below: float = CAP_BELOW) -> frozenset[str]:
    """Arms whose score is under ``cap_below`` times the best score."""
    best = max(scores.values(), default=0.0)
    return frozenset(a for a, s in scores.items() if s < cap_below * best)


def thompson(
    post: Mapping[str, Posterior], rng: np.random.Generator, *, samples: int = 200
) -> tuple[str, float]:
    """Pick an arm by Thompson sampling; returns (arm, propensity).

    The propensity (probability this policy picks the arm, estimated by Monte
    Carlo with ``samples`` draws) is logged for off-policy evaluation.
    """
    names = list(post)
    a = np.array([post[n].alpha for n in names])
    b = np.array([post[n].beta for n in names])
    draws = rng.beta(a[:, None], b[:, None], size=(len(names), samples + 1))
    chosen = int(np.argmax(draws[:, 0]))
    wins = np.bincount(np.argmax(draws[:, 1:], axis=0), minlength=len(names))
    propensity = float(max(wins[chosen], 1) / samples)
    return names[chosen], propensity


def request_seed(*parts: str | int | float) -> bytes:
    """An unambiguous byte seed from request facts (user, session, state and model versions)."""
    out = bytearray()
    for p in parts:
        b = str(p).encode()
        out += len(b).to_bytes(4, "big") + b
    return bytes(out)


def _rng(seed: bytes) -> np.random.Generator:
    """A generator seeded by a stable hash of ``seed`` (``hash()`` varies per process)."""
    digest = hashlib.blake2b(seed, digest_size=16, person=b"encore-bandit").digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"{where} must be a number, got {x!r}")
    return float(x)


@dataclass(frozen=True)
class Policy:
    """How the reader picks an arm: blend weights, priors, capped arms, exploration bound.

    ``arms`` maps each arm (a name of ``ARMS``) to its blend weights over
    ``SIGNALS``; ``priors`` holds each arm's Beta prior (Beta(1, 1) when absent).
    A share ``1 - explore_share`` of the choices goes to the leader (the uncapped
    arm with the highest posterior mean; the first in ``arms`` on a tie), the rest
    to a Thompson draw over the other arms (over all arms when the share is 1);
    ``capped`` arms never lead. The default
    share, 1, is plain Thompson sampling. Invalid values raise ValueError.
    """

    arms: Mapping[str, Mapping[str, float]]
    priors: Mapping[str, Posterior] = field(default_factory=dict)
    capped: frozenset[str] = frozenset()
    explore_share: float = THOMPSON

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("policy.arms is empty")
        arms: dict[str, MappingProxyType[str, float]] = {}
        for arm, weights in self.arms.items():
            if arm not in ARMS:
                raise ValueError(f"policy.arms: unknown arm {arm!r} (known: {', '.join(ARMS)})")
            clean: dict[str, float] = {}
            for signal, w in weights.items():
                where = f"policy.arms[{arm!r}][{signal!r}]"
                if signal not in SIGNALS:
                    raise ValueError(f"{where}: unknown signal (known: {', '.join(SIGNALS)})")
                w = _number(w, where)
                if not (math.isfinite(w) and w >= 0):
                    raise ValueError(f"{where}: weight must be finite and >= 0, got {w!r}")
                clean[signal] = w
            if not any(clean.values()):
                raise ValueError(f"policy.arms[{arm!r}]: all weights are zero")
            arms[arm] = MappingProxyType(clean)
        priors: dict[str, Posterior] = {}
        for arm, p in self.priors.items():
            if arm not in arms:
                raise ValueError(f"policy.priors: arm {arm!r} is not in policy.arms")
            if not all(math.isfinite(x) and x > 0 for x in (p.alpha, p.beta)):
                raise ValueError(f"policy.priors[{arm!r}]: alpha and beta must be finite and > 0")
        for arm in arms:
            priors[arm] = self.priors.get(arm, FLAT)
        unknown = sorted(set(self.capped) - set(arms))
        if unknown:
            raise ValueError(f"policy.capped: arms not in policy.arms: {unknown}")
        if set(self.capped) == set(arms):
            raise ValueError("policy.capped: every arm is capped; at least one must not be")
        share = _number(self.explore_share, "policy.explore_share")
        if not (math.isfinite(share) and 0 <= share <= 1):
            raise ValueError(f"policy.explore_share must be in [0, 1], got {share!r}")
        object.__setattr__(self, "arms", MappingProxyType(arms))
        object.__setattr__(self, "priors", MappingProxyType(priors))
        object.__setattr__(self, "capped", frozenset(self.capped))
        object.__setattr__(self, "explore_share", share)

    @classmethod
    def default(cls) -> Policy:
        """The hand-set ``ARMS`` with flat priors, nothing capped, plain Thompson sampling."""
        return cls(ARMS)

    @classmethod
    def from_scores(
        cls,
        scores: Mapping[str, float],
        *,
        strength: float,
        base: float = PRIOR_BASE,
        explore_share: float = DEFAULT_EXPLORE_SHARE,
        cap_below: float = CAP_BELOW,
        arms: Mapping[str, Mapping[str, float]] = ARMS,
    ) -> Policy:
        """A policy from offline validation scores: priors and capped arms (see above)."""
        known = {a: s for a, s in scores.items() if a in arms}
        return cls(
            arms,
            priors_from_scores(known, strength=strength, base=base, arms=arms),
            capped_from_scores(known, cap_below),
            explore_share,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict (for an artifact manifest); :meth:`from_json` reads it back."""
        return {
            "arms": {a: dict(w) for a, w in self.arms.items()},
            "priors": {a: {"alpha": p.alpha, "beta": p.beta} for a, p in self.priors.items()},
            "capped": sorted(self.capped),
            "explore_share": self.explore_share,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        """A policy from :meth:`to_json` output; ValueError says what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"policy must be an object, got {type(data).__name__}")
        extra = sorted(set(data) - {"arms", "priors", "capped", "explore_share"})
        if extra:
            raise ValueError(f"policy: unknown fields {extra}")
        arms = data.get("arms")
        if not isinstance(arms, Mapping) or not all(isinstance(w, Mapping) for w in arms.values()):
            raise ValueError("policy.arms must be an object of arm -> {signal: weight}")
        raw_priors = data.get("priors", {})
        if not isinstance(raw_priors, Mapping):
            raise ValueError("policy.priors must be an object of arm -> {alpha, beta}")
        priors = {}
        for arm, p in raw_priors.items():
            if not isinstance(p, Mapping) or set(p) != {"alpha", "beta"}:
                raise ValueError(f"policy.priors[{arm!r}] must be {{'alpha': a, 'beta': b}}")
            priors[arm] = Posterior(
                _number(p["alpha"], f"policy.priors[{arm!r}].alpha"),
                _number(p["beta"], f"policy.priors[{arm!r}].beta"),
            )
        capped = data.get("capped", [])
        if not isinstance(capped, list) or not all(isinstance(a, str) for a in capped):
            raise ValueError("policy.capped must be a list of arm names")
        share = _number(data.get("explore_share", THOMPSON), "policy.explore_share")
        return cls(arms, priors, frozenset(capped), share)


def _draw(
    policy: Policy, post: Mapping[str, Posterior], seed: bytes, samples: int
) -> tuple[str, dict[str, float]]:
    """The arm the seeded policy picks and every arm's probability of being picked."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    names = list(policy.arms)
    dists = [post.get(a, policy.priors[a]) for a in names]
    leader = max(
        (i for i, a in enumerate(names) if a not in policy.capped), key=lambda i: dists[i].mean
    )
    # the exploiting part (1 - share) goes to the leader; the exploring part is a
    # Thompson draw over the challengers (every other arm), or over all arms when
    # the share is 1 (plain Thompson sampling) or there is no challenger
    share = policy.explore_share
    pool = [i for i in range(len(names)) if i != leader or share >= 1.0 or len(names) == 1]
    rng = _rng(seed)
    explore = rng.random() < share
    alpha = np.array([dists[i].alpha for i in pool])
    beta = np.array([dists[i].beta for i in pool])
    winners = np.argmax(rng.beta(alpha[:, None], beta[:, None], size=(len(pool), samples)), axis=0)
    wins = np.bincount(winners, minlength=len(pool))
    probs = dict.fromkeys(names, 0.0)
    for j, i in enumerate(pool):
        probs[names[i]] = share * int(wins[j]) / samples
    probs[names[leader]] += 1.0 - share
    arm = names[pool[int(winners[0])]] if explore else names[leader]
    return arm, probs


def choose(
    policy: Policy, post: Mapping[str, Posterior], seed: bytes, *, samples: int = 256
) -> tuple[str, float]:
    """Pick an arm for one request; returns (arm, propensity).

    Everything random comes from an RNG seeded by a BLAKE2b hash of ``seed``,
    so the same seed and posteriors give the same answer (build the seed with
    :func:`request_seed` from what should change the answer, e.g. user id,
    session start, the user's state event count and the model versions). With
    probability ``policy.explore_share`` the pick is a Thompson draw over the
    challengers; otherwise it is the leader (see :class:`Policy`). The propensity is the
    probability the policy picks that arm: exact for the exploiting part; for the
    Thompson part, the share of ``samples`` seeded Thompson draws the arm wins
    (the first of which made the pick, so never 0).
    ``post`` lacking an arm of the policy means that arm's prior.
    """
    arm, probs = _draw(policy, post, seed, samples)
    return arm, probs[arm]


def propensities(
    policy: Policy, post: Mapping[str, Posterior], seed: bytes, *, samples: int = 256
) -> dict[str, float]:
    """Every arm's probability of being picked, estimated exactly as :func:`choose` does.

    The values sum to 1; ``choose(...)[1]`` equals the entry of the arm it returns.
    """
    return _draw(policy, post, seed, samples)[1]
