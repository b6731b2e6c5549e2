"""``encore ope``: off-policy estimates of every bandit arm from the served-list log.

Reads the ``recommendations`` and ``interactions`` topics from the beginning
(the snapshot's reader, :func:`batch.snapshot.read_topics`: no consumer group,
nothing committed), joins feedback to served lists by ``context.rec_id`` and
estimates each arm's value as a deterministic target policy with IPS, SNIPS and
doubly robust estimators (:mod:`models.ope`).

The result is stored as JSON in Redis (:func:`models.keys.ope_key`), where
``GET /v1/admin/status`` reads it. Redis rather than a file under the run
directory because the API already reads Redis on that route, and in a deployment
the API and the job need not share a disk (docker-compose runs them in separate
containers); a file is written too when ``--out`` asks for one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from batch.snapshot import read_topics
from models.bandit import ARMS
from models.codec import decode_record, decode_served
from models.ope import Joined, evaluate, join, summary
from models.topics import INTERACTIONS, RECOMMENDATIONS

UNIT = (
    "reward per served track: the mean over a list's positions of the reward of the latest "
    "feedback on that position (like 1, full play 1, partial play its completion, skip and "
    "dislike 0), 0 where the track got no feedback"
)
INTERVAL = "95% normal approximation (IPS, DR: per-list terms; SNIPS: delta method)"


def _is_feedback(event: Any) -> bool:
    return getattr(event, "context", None) is not None


async def read_log(
    bootstrap: str, *, partitions: int, max_bytes: int
) -> tuple[list[Any], list[Any], dict[str, int]]:
    """Served lists, feedback that names a recommendation, and undecodable counts."""
    read = await read_topics(
        bootstrap,
        {RECOMMENDATIONS: decode_served, INTERACTIONS: decode_record},
        partitions=partitions,
        max_bytes=max_bytes,
        keep=lambda e: e.type == "served" or _is_feedback(e),
    )
    served, _, bad_served = read[RECOMMENDATIONS]
    feedback, _, bad_feedback = read[INTERACTIONS]
    return served, feedback, {RECOMMENDATIONS: bad_served, INTERACTIONS: bad_feedback}


def report(
    served: Iterable[Any],
    feedback: Iterable[Any],
    *,
    full_play: float,
    since_ms: int | None = None,
    rejected: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The estimates of every arm as a JSON-ready dict."""
    lists = [s for s in served if since_ms is None or s.occurred_ms >= since_ms]
    joined: Joined = join(lists, feedback, full_play=full_play)
    estimates = evaluate(joined.lists, ARMS, folds=2)
    return {
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": None
        if since_ms is None
        else datetime.fromtimestamp(since_ms / 1000, UTC).isoformat(timespec="seconds"),
        "lists": len(joined.lists),
        "lists_with_feedback": sum(1 for x in joined.lists if x.feedback),
        "feedback_joined": joined.feedback_joined,
        "feedback_unmatched": joined.feedback_unmatched,
        "empty_lists": joined.empty_lists,
        "rejected": rejected or {},
        "unit": UNIT,
        "target": "each arm as a deterministic policy (always that arm), logged propensities",
        "interval": INTERVAL,
        "arms": summary(estimates),
    }


def _cell(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(e: dict[str, float | None]) -> str:
    if e["value"] is None:
        return "–"
    return f"{_cell(e['value'])} [{_cell(e['low'])}, {_cell(e['high'])}]"


def table(result: dict[str, Any]) -> str:
    """The result as a markdown table, with a one-line summary above it."""
    lines = [
        f"{result['lists']} lists ({result['lists_with_feedback']} with feedback), "
        f"{result['feedback_joined']} feedback joined, {result['feedback_unmatched']} unmatched; "
        f"value = reward per served track, {result['interval']}",
        "",
        "| arm | lists | live rate | logged mean | IPS | SNIPS | DR | ESS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in result["arms"].items():
        lines.append(
            f"| {arm} | {a['lists']} | {_cell(a['feedback_rate'])} | {_cell(a['logged_mean'])} "
            f"| {_ci(a['ips'])} | {_ci(a['snips'])} | {_ci(a['dr'])} | {a['ess']:.0f} |"
        )
    return "\n".join(lines)


def parse_since(text: str, now: float | None = None) -> int:
    """``--since``: an ISO-8601 time with offset, or an age like ``30m``, ``24h``, ``7d``."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return int(((now or time.time()) - int(text[:-1]) * units[text[-1]]) * 1000)
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("give a time zone offset, e.g. 2024-05-01T00:00Z")
    return int(when.timestamp() * 1000)


def to_json(result: dict[str, Any]) -> bytes:
    """Indented JSON bytes of a result."""
    return orjson.dumps(result, option=orjson.OPT_INDENT_2)
