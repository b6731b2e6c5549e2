"""Bandit policy simulation: does the served policy find the best blend arm, and how fast?

A synthetic population of listeners where one arm is truly best: Bernoulli
rewards with means ``TRUTH`` (best 0.55, the next 0.50: a margin of 0.05). Each
round one listener asks for a list; the arm comes from exactly the production
code (:func:`models.bandit.choose` on :func:`models.bandit.posteriors`) with the
seed the API derives (user, session start, the user's event count, model
version); the feedback becomes a reward through :func:`models.bandit.reward`
and is added, in integer millionths, to the ``<arm>:a`` / ``<arm>:b`` sums of
the user's partition, as the stream workers do. The reader's posterior only
sees those sums every ``DELAY`` rounds (feedback delay). Three policies run on
the same listeners and reward draws:

* ``flat``: plain Thompson sampling from Beta(1, 1) priors, nothing capped (the
  policy served before a tuned one is published);
* ``priors``: plain Thompson sampling from priors from a noisy offline score;
* ``bounded``: the same priors, bounded exploration (the published policy): the
  uncapped arm with the best posterior mean gets 95% of the choices, a Thompson
  draw over all arms the other 5%; arms under 90% of the best offline score are
  capped (never lead).

No broker or Redis: the policy is pure, so the simulation runs it in-process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, machine, save, table
from models.bandit import (
    ARMS,
    REWARD_SCALE,
    Policy,
    Posterior,
    choose,
    posteriors,
    request_seed,
    reward,
    thompson,
)
from models.topics import partition_for

TRUTH = {
    "collab-heavy": 0.55,
    "balanced": 0.50,
    "realtime-heavy": 0.48,
    "content-heavy": 0.45,
    "discovery": 0.40,
}
"""True mean reward per arm (the chance a recommended list earns a full play)."""
BEST = max(TRUTH, key=TRUTH.__getitem__)

ROUNDS = 5_000
TAIL = 1_000
"""The best arm's share is also reported over the last TAIL rounds."""
DELAY = 50
"""Rounds between posterior refreshes seen by the reader (feedback delay)."""
USERS = 1_000
SESSION_LEN = 20
"""Requests per listening session (a new session start changes the seed)."""
PARTITIONS = 6
OFFLINE_NOISE = 0.05
"""Offline score = true mean x (1 + OFFLINE_NOISE x standard normal)."""
STRENGTH = 50.0
"""Pseudo-observations the offline prior is worth."""
EXPLORE_SHARE = 0.05
GOAL = 0.8
"""Goal: the best arm's share of pulls."""
SEEDS = tuple(range(10))
MODEL_VERSION = "als:1"


def policies(offline: Mapping[str, float]) -> dict[str, Policy]:
    """The compared policies, from one set of offline scores."""
    bounded = Policy.from_scores(offline, strength=STRENGTH, explore_share=EXPLORE_SHARE)
    return {
        "flat": Policy.default(),
        "priors": Policy(ARMS, bounded.priors),
        "bounded": bounded,
    }


def offline_scores(rng: np.random.Generator) -> dict[str, float]:
    """A noisy offline evaluation of each arm (the scale does not matter, only ratios)."""
    return {a: max(0.0, m * (1 + OFFLINE_NOISE * float(rng.normal()))) for a, m in TRUTH.items()}


def simulate(
    policy: Policy,
    seed: int,
    rounds: int = ROUNDS,
    delay: int = DELAY,
    truth: Mapping[str, float] = TRUTH,
    users: int = USERS,
    every: int = 50,
) -> dict[str, Any]:
    """One run: pull counts, the best arm's shares, the cumulative regret curve."""
    rng = np.random.default_rng(seed)  # listeners and reward draws: equal across policies
    who = rng.integers(0, users, rounds)
    luck = rng.random(rounds)
    best = max(truth, key=truth.__getitem__)
    sums: list[dict[str, int]] = [{} for _ in range(PARTITIONS)]
    pending: list[tuple[int, str, int]] = []
    events = np.zeros(users, dtype=np.int64)
    post = posteriors(sums, policy.arms, policy.priors)
    picks: list[str] = []
    regret = 0.0
    curve: list[float] = []
    for t in range(rounds):
        if t and t % delay == 0:  # the workers' batches reach Redis; the reader re-reads
            for p, key, micro in pending:
                sums[p][key] = sums[p].get(key, 0) + micro
            pending.clear()
            post = posteriors(sums, policy.arms, policy.priors)
        u = int(who[t])
        user = f"u{u}"
        session = int(events[u]) // SESSION_LEN
        seed_bytes = request_seed(user, session, int(events[u]), MODEL_VERSION)
        arm, _propensity = choose(policy, post, seed_bytes)
        picks.append(arm)
        liked = bool(luck[t] < truth[arm])
        r = reward("play", 1.0, 0.8) if liked else reward("skip", None, 0.8)
        assert r is not None
        micro = round(r * REWARD_SCALE)
        p = partition_for(user, PARTITIONS)
        pending += [(p, f"{arm}:a", micro), (p, f"{arm}:b", REWARD_SCALE - micro)]
        events[u] += 1
        regret += truth[best] - truth[arm]
        if (t + 1) % every == 0:
            curve.append(round(regret, 3))
    tail = picks[-min(TAIL, rounds // 5) :]
    return {
        "pulls": {a: picks.count(a) for a in policy.arms},
        "best_share": picks.count(best) / rounds,
        "best_share_tail": tail.count(best) / len(tail),
        "tail_rounds": len(tail),
        "regret": round(regret, 3),
        "regret_curve": curve,
        "curve_every": every,
    }


def refresh_changes(trials: int = 2_000) -> dict[str, float]:
    """How often a page reload with nothing new changes the arm, policy vs. per-request RNG."""
    post = {a: Posterior(1.0 + 30 * m, 1.0 + 30 * (1 - m)) for a, m in TRUTH.items()}
    policy = Policy.default()
    changed = sum(
        choose(policy, post, request_seed(f"u{i}", 0, 7, MODEL_VERSION))
        != choose(policy, post, request_seed(f"u{i}", 0, 7, MODEL_VERSION))
        for i in range(trials)
    )
    rng = np.random.default_rng(0)
    old = sum(thompson(post, rng)[0] != thompson(post, rng)[0] for _ in range(trials))
    return {"choose": changed / trials, "thompson_fresh_rng": old / trials, "trials": trials}


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def run(seeds: Sequence[int] = SEEDS, rounds: int = ROUNDS) -> dict[str, Any]:
    t0 = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {}
    best_capped = 0
    for seed in seeds:
        offline = offline_scores(np.random.default_rng(10_000 + seed))
        compared = policies(offline)
        best_capped += BEST in compared["bounded"].capped
        for name, policy in compared.items():
            runs.setdefault(name, []).append(simulate(policy, seed, rounds) | {"seed": seed})
    variants = {
        name: {
            "best_share": _summary([r["best_share"] for r in rs]),
            "best_share_tail": _summary([r["best_share_tail"] for r in rs]),
            "regret": _summary([r["regret"] for r in rs]),
            "runs_meeting_goal": sum(r["best_share_tail"] >= GOAL for r in rs),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    return {
        "name": "bandit",
        "machine": machine(),
        "params": {
            "truth": TRUTH,
            "best": BEST,
            "margin": round(TRUTH[BEST] - sorted(TRUTH.values())[-2], 4),
            "rounds": rounds,
            "tail": min(TAIL, rounds // 5),
            "delay_rounds": DELAY,
            "users": USERS,
            "session_len": SESSION_LEN,
            "offline_noise": OFFLINE_NOISE,
            "prior_strength": STRENGTH,
            "explore_share": EXPLORE_SHARE,
            "seeds": list(seeds),
            "goal_best_share": GOAL,
        },
        "best_capped_offline": best_capped,
        "variants": variants,
        "refresh": refresh_changes(),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _cell(s: Mapping[str, float], pct: bool) -> str:
    if pct:
        return f"{s['median']:.1%} ({s['min']:.1%}-{s['max']:.1%})"
    return f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})"


def render(r: dict[str, Any]) -> str:
    p = r["params"]
    rows = [
        [
            name,
            _cell(v["best_share"], True),
            _cell(v["best_share_tail"], True),
            _cell(v["regret"], False),
            f"{v['runs_meeting_goal']} of {len(v['runs'])}",
        ]
        for name, v in r["variants"].items()
    ]
    head = [
        "policy",
        "best arm share",
        f"best arm share, last {p['tail']:,}",
        "cumulative regret",
        f"seeds with last {p['tail']:,} >= {p['goal_best_share']:.0%}",
    ]
    f = r["refresh"]
    notes = (
        f"\n\n{p['rounds']:,} rounds, {len(p['seeds'])} simulation seeds: median (min-max). "
        f"Best arm {p['best']} at {p['truth'][p['best']]}, margin {p['margin']} over the next; "
        f"posterior refreshed every {p['delay_rounds']} rounds; prior strength "
        f"{p['prior_strength']:g} from an offline score with {p['offline_noise']:.0%} noise "
        f"(best arm capped by it in {r['best_capped_offline']} of {len(p['seeds'])} seeds); "
        f"explore share {p['explore_share']:.0%}; goal best arm share >= "
        f"{p['goal_best_share']:.0%}. Reload with nothing new changes the arm: "
        f"{f['choose']:.1%} with choose(), {f['thompson_fresh_rng']:.1%} with a fresh RNG "
        f"per request. {r['seconds']} s."
    )
    return table(rows, head) + notes


def plot(r: dict[str, Any], path: Path) -> Path | None:
    """Median cumulative regret per policy with the min-max band; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is missing (pip install 'encore[ml]')")
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, v in r["variants"].items():
        curves = np.array([run["regret_curve"] for run in v["runs"]])
        x = np.arange(1, curves.shape[1] + 1) * v["runs"][0]["curve_every"]
        ax.plot(x, np.median(curves, axis=0), label=name)
        ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), alpha=0.15)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative regret (expected reward lost)")
    ax.set_title(f"bandit policies, {len(r['params']['seeds'])} seeds (median, min-max)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    result = run()
    path = save("bandit", result)
    print(render(result))
    png = plot(result, RESULTS / "bandit-regret.png")
    print(f"\n{path}" + (f"\n{png}" if png else ""))


if __name__ == "__main__":
    main()
