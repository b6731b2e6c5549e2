"""Periodic retraining: run a job every N seconds until told to stop.

A failed run is reported and the loop goes on: the published artifacts stay
as they were (readers keep the last good version), and the next run may
succeed. Runs never overlap; a run longer than the interval is followed by the
next one at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_every(
    interval_s: float,
    job: Callable[[], T],
    *,
    stop: threading.Event,
    on_result: Callable[[T], None] = lambda _r: None,
    on_error: Callable[[Exception], None] = lambda _e: None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run ``job`` now and then every ``interval_s`` seconds until ``stop`` is set.

    Returns how many runs were made. ``interval_s`` must be positive.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    runs = 0
    while not stop.is_set():
        started = clock()
        try:
            on_result(job())
        except Exception as exc:  # noqa: BLE001 - a failed run must not end the schedule
            on_error(exc)
        runs += 1
        stop.wait(max(0.0, interval_s - (clock() - started)))
    return runs
