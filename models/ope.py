"""Off-policy evaluation of the bandit's arms from the served-list log (pure).

The API logs every personal list it serves (:class:`models.events.ServedList`:
the arm Thompson sampling chose and the probability it had of choosing it);
feedback names the list it came from (``context.rec_id``). From that log we ask,
for each arm ``a``: what would the reward have been had every request been
served by ``a`` (the deterministic target policy "always ``a``")?

Unit and reward. The unit is one served list ``i`` with logged arm ``A_i`` and
logged propensity ``p_i``. Its reward ``R_i`` is the mean over its positions of
the reward of the latest feedback on that position (:func:`models.bandit.reward`:
like 1, full play 1, partial play its completion, skip and dislike 0), 0 where
the track got no feedback. So every value here is *reward per served track*, in
[0, 1]; a list without any feedback counts, with reward 0 (the arm did not
engage the listener), so nothing is conditioned on the outcome.

Estimators, with ``w_i = 1[A_i = a] / p_i``:

* IPS: ``mean(w_i R_i)``, unbiased when the propensities are right.
* SNIPS: ``sum(w_i R_i) / sum(w_i)``, a little biased, much less variance.
* DR: ``mean(q_i(a) + w_i (R_i - q_i(a)))`` with ``q_i(a)`` the mean over the
  list's positions of a per-arm, per-position mean reward, fitted by
  cross-fitting: each list's ``q`` comes from the lists of the other folds.

Intervals are 95% normal approximations (not bootstrap: cheap, deterministic,
and the per-list terms are independent): IPS and DR from the standard deviation
of their per-list terms, SNIPS from its linearisation ``w_i (R_i - V) / mean(w)``.
With few matching lists or extreme weights (the logged propensity has a floor of
1/200) they are optimistic; ``ess`` (Kish's effective sample size of the
weights) says how many lists an estimate really rests on.

Why numpy and not Open Bandit Pipeline (``obp``): the obp releases that support
Python 3.11 stop at 0.4.1 (2021; 0.5.x requires Python < 3.11); 0.4.1 does
install beside this environment's numpy, scikit-learn and torch without
downgrades, but it would add pandas and seaborn and make torch (kept behind the
``ml`` extra) a hard requirement of evaluation, for three estimators that are a
few lines each here. On a simulated log, obp 0.4.1's IPS, SNIPS and DR point
estimates equal these to 1e-16 given the same inputs and reward model (checked
outside the test suite, with obp installed in a scratch directory).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.bandit import reward

Z95 = 1.959963984540054
"""Two-sided 95% quantile of the standard normal."""

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LoggedList:
    """One served list joined with its feedback."""

    rec_id: str
    arm: str
    propensity: float
    rewards: tuple[float, ...]
    """Reward per position (latest feedback on it; 0.0 without feedback)."""
    feedback: int = 0
    """Feedback events with a reward that named this list."""
    feedback_reward: float = 0.0
    """Sum of their rewards (numerator of the live reward rate)."""

    @property
    def reward(self) -> float:
        """Reward per served track of the list."""
        return sum(self.rewards) / len(self.rewards) if self.rewards else 0.0


@dataclass(slots=True)
class Joined:
    """Served lists with their rewards, and what feedback could not be placed."""

    lists: list[LoggedList] = field(default_factory=list)
    feedback_joined: int = 0
    feedback_unmatched: int = 0
    """Feedback naming a rec_id that is not in the log, or a track not in its list."""
    empty_lists: int = 0
    """Served lists without items (not evaluated)."""


def join(lists: Iterable[Any], events: Iterable[Any], *, full_play: float) -> Joined:
    """Join served lists (``ServedList``) with interaction events by ``context.rec_id``.

    The latest feedback on a position (by event time, then log order) sets that
    position's reward; every rewarded feedback counts toward the live rate.
    """
    served: dict[str, Any] = {}
    for s in lists:
        served.setdefault(s.rec_id, s)
    latest: dict[tuple[str, int], tuple[int, int, float]] = {}
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    out = Joined()
    for seq, e in enumerate(events):
        ctx = getattr(e, "context", None)
        if ctx is None:
            continue
        completion = e.completion_ratio if e.type == "play" else None
        r = reward(e.type, completion, full_play)
        if r is None:
            continue
        s = served.get(ctx.rec_id)
        pos = None if s is None else _position(s, e.track_id, ctx.position)
        if s is None or pos is None:
            out.feedback_unmatched += 1
            continue
        out.feedback_joined += 1
        counts[s.rec_id] = counts.get(s.rec_id, 0) + 1
        sums[s.rec_id] = sums.get(s.rec_id, 0.0) + r
        stamp = (e.occurred_ms, seq, r)
        if latest.get((s.rec_id, pos), (-1, -1, 0.0))[:2] < stamp[:2]:
            latest[(s.rec_id, pos)] = stamp
    for rec_id, s in served.items():
        if not s.items:
            out.empty_lists += 1
            continue
        rewards = tuple(
            latest[(rec_id, k)][2] if (rec_id, k) in latest else 0.0 for k in range(len(s.items))
        )
        out.lists.append(
            LoggedList(
                rec_id, s.arm, s.propensity, rewards, counts.get(rec_id, 0), sums.get(rec_id, 0.0)
            )
        )
    return out


def _position(served: Any, track_id: str, hint: int | None) -> int | None:
    items = served.items
    if hint is not None and 0 <= hint < len(items) and items[hint].track_id == track_id:
        return hint
    for k, item in enumerate(items):
        if item.track_id == track_id:
            return k
    return None


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its 95% interval."""

    value: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in the interval."""
        return self.low <= x <= self.high

    def as_dict(self) -> dict[str, float | None]:
        """JSON form (NaN as None), rounded to 5 places."""
        return {k: _num(getattr(self, k)) for k in ("value", "low", "high")}


NO_ESTIMATE = Estimate(math.nan, math.nan, math.nan)


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 5)


def _normal(terms: Floats) -> Estimate:
    n = len(terms)
    if n < 2:
        return NO_ESTIMATE
    mean = float(terms.mean())
    half = Z95 * float(terms.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half)


def ips(w: Floats, r: Floats) -> Estimate:
    """Inverse propensity scoring."""
    return _normal(w * r)


def snips(w: Floats, r: Floats) -> Estimate:
    """Self-normalised IPS (delta-method interval)."""
    n = len(w)
    if n < 2 or w.sum() <= 0:
        return NO_ESTIMATE
    value = float((w * r).sum() / w.sum())
    infl = w * (r - value) / w.mean()
    half = Z95 * float(infl.std(ddof=1)) / math.sqrt(n)
    return Estimate(value, value - half, value + half)


def doubly_robust(w: Floats, r: Floats, q: Floats) -> Estimate:
    """Doubly robust: the reward model's value plus the IPS-weighted residual."""
    return _normal(q + w * (r - q))


def effective_sample_size(w: Floats) -> float:
    """Kish's effective sample size of importance weights."""
    sq = float((w * w).sum())
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ArmEstimate:
    """Off-policy estimates of "always serve this arm", and what the log says on-policy."""

    arm: str
    lists: int
    """Logged lists served by this arm."""
    feedback: int
    feedback_rate: float
    """Mean reward per feedback event on this arm's lists (what the bandit posterior tracks)."""
    logged_mean: float
    """Mean reward per served track over this arm's lists (naive; confounded by context)."""
    ips: Estimate
    snips: Estimate
    dr: Estimate
    ess: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "lists": self.lists,
            "feedback": self.feedback,
            "feedback_rate": _num(self.feedback_rate),
            "logged_mean": _num(self.logged_mean),
            "ips": self.ips.as_dict(),
            "snips": self.snips.as_dict(),
            "dr": self.dr.as_dict(),
            "ess": round(self.ess, 1),
        }


def position_means(
    arm_idx: npt.NDArray[np.int64], rewards: Floats, mask: Floats, n_arms: int
) -> Floats:
    """Per-arm, per-position mean reward, shape (arms, positions).

    Cells without data fall back to the arm's mean over all positions, then to
    the overall mean.
    """
    sums = np.zeros((n_arms, rewards.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, arm_idx, rewards * mask)
    np.add.at(counts, arm_idx, mask)
    overall = sums.sum() / counts.sum() if counts.sum() > 0 else 0.0
    arm_total = counts.sum(axis=1)
    arm_mean = np.where(arm_total > 0, sums.sum(axis=1) / np.maximum(arm_total, 1), overall)
    return np.where(counts > 0, sums / np.maximum(counts, 1), arm_mean[:, None])


def evaluate(
    logged: Sequence[LoggedList], arms: Iterable[str], *, folds: int = 2
) -> dict[str, ArmEstimate]:
    """IPS, SNIPS and DR estimates of each arm as a deterministic target policy.

    A list's cross-fitting fold follows from its ``rec_id`` alone, so the result
    does not depend on the order the log was read in.
    """
    names = list(dict.fromkeys([*arms, *(x.arm for x in logged)]))
    index = {a: i for i, a in enumerate(names)}
    n = len(logged)
    width = max((len(x.rewards) for x in logged), default=1)
    arm_idx = np.array([index[x.arm] for x in logged], dtype=np.int64)
    prop = np.array([x.propensity for x in logged], dtype=np.float64)
    length = np.array([len(x.rewards) for x in logged], dtype=np.int64)
    pos_r = np.zeros((n, width))
    mask = np.zeros((n, width))
    for i, x in enumerate(logged):
        pos_r[i, : len(x.rewards)] = x.rewards
        mask[i, : len(x.rewards)] = 1.0
    r = np.array([x.reward for x in logged], dtype=np.float64)
    fold = np.array([zlib.crc32(x.rec_id.encode()) % max(1, folds) for x in logged])
    q = _cross_fitted(arm_idx, pos_r, mask, length, fold, len(names))
    out = {}
    for a in names:
        mine = arm_idx == index[a]
        w = np.where(mine, 1.0 / np.maximum(prop, 1e-12), 0.0)
        fb = sum(x.feedback for x, m in zip(logged, mine, strict=True) if m)
        fb_sum = sum(x.feedback_reward for x, m in zip(logged, mine, strict=True) if m)
        out[a] = ArmEstimate(
            arm=a,
            lists=int(mine.sum()),
            feedback=fb,
            feedback_rate=fb_sum / fb if fb else math.nan,
            logged_mean=float(r[mine].mean()) if mine.any() else math.nan,
            ips=ips(w, r) if mine.any() else NO_ESTIMATE,
            snips=snips(w, r) if mine.any() else NO_ESTIMATE,
            dr=doubly_robust(w, r, q[:, index[a]]) if mine.any() else NO_ESTIMATE,
            ess=effective_sample_size(w),
        )
    return out


def _cross_fitted(
    arm_idx: npt.NDArray[np.int64],
    pos_r: Floats,
    mask: Floats,
    length: npt.NDArray[np.int64],
    fold: npt.NDArray[np.int64],
    n_arms: int,
) -> Floats:
    """Predicted reward per served track of every list under every arm, shape (lists, arms).

    Each list's prediction comes from the lists of the other folds (all lists when
    there is only one fold).
    """
    n = len(arm_idx)
    q = np.zeros((n, n_arms))
    for f in np.unique(fold):
        test = fold == f
        train = ~test if (~test).any() else test
        means = position_means(arm_idx[train], pos_r[train], mask[train], n_arms)
        cum = np.cumsum(means, axis=1)  # (arms, positions)
        last = np.maximum(length[test], 1) - 1
        q[test] = (cum[:, last] / (last + 1)).T
    return q


def summary(estimates: Mapping[str, ArmEstimate]) -> dict[str, dict[str, Any]]:
    """JSON form of :func:`evaluate`'s result."""
    return {a: e.as_dict() for a, e in estimates.items()}
