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
from Beta(1, 1). Sums are kept in Redis as integers in millionths (exact and
order-independent, so live and replayed state agree), per interaction partition;
readers add the partitions up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
        """Feedback events seen (fractional rewards count once each)."""
        return self.alpha + self.beta - 2.0


def posteriors(
    sums: list[Mapping[bytes | str, Any]], arms: Mapping[str, Any] = ARMS
) -> dict[str, Posterior]:
    """Posteriors from per-partition ``<arm>:a`` / ``<arm>:b`` reward sums, Beta(1,1) prior."""
    out = {}
    for arm in arms:
        a = b = 1.0
        for part in sums:
            for k, v in part.items():
                name = k.decode() if isinstance(k, bytes) else k
                if name == f"{arm}:a":
                    a += int(v) / REWARD_SCALE
                elif name == f"{arm}:b":
                    b += int(v) / REWARD_SCALE
        out[arm] = Posterior(a, b)
    return out


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
