"""Operator routes: stream lag, dead letters, artifacts, bandit, supervision, retraining
(admin key)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query

from api.deps import AdminAccess, Res
from api.recommend import arm_posteriors
from api.validation import StrictJSONRoute
from models import ops
from models.io.dlq import read_dead_letters, redrive
from models.keys import ope_key
from models.topics import SOURCE_TOPICS

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/v1/admin",
    tags=["operations"],
    dependencies=[AdminAccess],
    route_class=StrictJSONRoute,
)


@router.get(
    "/status",
    summary="Lag, applied offsets, dead-letter counts, artifacts, bandit, off-policy estimates, "
    "supervised processes",
)
async def status(res: Res) -> dict[str, Any]:
    reader = res.engine.reader
    out: dict[str, Any] = {
        "time": time.time(),
        "artifacts": res.bundle.versions(),
        "artifact_failures": res.bundle.failures,
        "supervisor": supervisor_state(res.settings.run.dir),
    }
    if reader is None:
        return {**out, "redis": "not configured"}
    try:
        keys = await reader.keys()
        parts = range(reader.partitions)
        offsets = await res.store.read(
            [ops.get(keys.offset(t, p)) for t in SOURCE_TOPICS for p in parts]
        )
        dlq = await res.store.read(
            [ops.hgetall(keys.dlq_counts(t, p)) for t in SOURCE_TOPICS for p in parts]
        )
        policy, post = arm_posteriors(res.bundle, await reader.bandit_sums(keys, max_age_s=0))
        lag = await reader.lag()
        [ope_json] = await res.store.read([ops.get(ope_key(res.settings.redis.key_prefix))])
    except Exception as exc:  # noqa: BLE001 - report, don't fail, the status page
        log.warning("status: redis unavailable: %s", exc)  # the text may name socket paths
        return {**out, "redis": f"unavailable ({type(exc).__name__})"}
    applied: dict[str, int] = {}
    dead: dict[str, int] = {}
    i = 0
    for t in SOURCE_TOPICS:
        for p in parts:
            applied[f"{t}:{p}"] = int(offsets[i]) + 1 if offsets[i] is not None else 0
            for reason, n in dlq[i].items():
                name = f"{t}/{reason.decode()}"
                dead[name] = dead.get(name, 0) + int(n)
            i += 1
    return {
        **out,
        "generation": keys.generation,
        "records_applied": applied,
        "lag": lag,
        "dead_letters": dead,
        "bandit": {
            a: {
                "alpha": round(p.alpha, 3),
                "beta": round(p.beta, 3),
                "mean": round(p.mean, 4),
                "prior_mean": round(policy.priors[a].mean, 4),
                "feedback": round(p.pulls - policy.priors[a].pulls, 1),
                "capped": a in policy.capped,
                "weights": dict(policy.arms[a]),
            }
            for a, p in post.items()
        },
        "arm_pulls": _arm_pulls(),
        "ope": _ope(ope_json),
    }


SUPERVISOR_FILE = "supervisor.json"
"""Written by ``encore up`` in the run directory (``encore.supervisor.STATE_FILE``)."""


def supervisor_state(run_dir: Path) -> dict[str, Any] | None:
    """The children of the ``encore up`` that started this API, or None when there is none.

    The file is replaced atomically by the supervisor, so a read sees a whole state; a file
    left behind by a supervisor that no longer runs (killed outright) is ignored.
    """
    try:
        state = orjson.loads((run_dir / SUPERVISOR_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int):
        return None
    try:
        os.kill(state["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user
    return state


def _ope(raw: bytes | None) -> dict[str, Any] | None:
    """The latest ``encore ope`` result (None: never run)."""
    if raw is None:
        return None
    try:
        out = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return {"error": f"unreadable result: {exc}"}
    return out if isinstance(out, dict) else {"error": "unreadable result: not an object"}


def _arm_pulls() -> dict[str, float]:
    from api.metrics import ARM_PULLS

    return {
        s.labels["arm"]: s.value
        for m in ARM_PULLS.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }


@router.get("/dlq", summary="Dead letters by reason, and the latest ones")
async def dlq(res: Res, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    bootstrap = res.settings.kafka.bootstrap
    if not bootstrap:
        raise HTTPException(503, "no broker configured")
    letters = await read_dead_letters(bootstrap)
    latest = [{k: v for k, v in e.items() if k != "original"} for e in letters.entries[-limit:]]
    return {
        "distinct": len(letters.entries),
        "by_topic_reason": letters.by_reason(),
        "latest": latest,
    }


@router.post("/dlq/redrive", summary="Send dead letters that validate now back to their topic")
async def dlq_redrive(
    res: Res, reason: Annotated[str | None, Query(max_length=64)] = None, dry_run: bool = False
) -> dict[str, Any]:
    s = res.settings
    if not s.kafka.bootstrap:
        raise HTTPException(503, "no broker configured")
    report = await redrive(
        s.kafka.bootstrap,
        s.kafka.partitions,
        reason=reason,
        dry_run=dry_run,
        max_record_bytes=s.kafka.max_record_bytes,
        max_skew_ms=round(s.stream.max_clock_skew_s * 1000),
    )
    return {
        "sent": report.sent,
        "still_invalid": report.still_invalid,
        "reasons_left": report.reasons_left,
    }


@router.post("/retrain", status_code=202, summary="Retrain all models from the event log")
async def retrain(res: Res) -> dict[str, Any]:
    running = res.extras.get("retrain")
    if running is not None and running.returncode is None:
        return {"status": "running", "pid": running.pid}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "encore.cli",
        "train",
        "all",
        "--source",
        "events",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    res.extras["retrain"] = proc
    return {"status": "started", "pid": proc.pid}
