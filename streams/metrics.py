"""Prometheus metrics of the stream workers and the replay."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("encore_events_applied_total", "Events applied to state", ["topic", "type"])
DUPLICATES = Counter("encore_dedup_hits_total", "Events dropped as resends", ["topic"])
STALE = Counter("encore_stale_records_total", "Records at or below the applied offset", ["topic"])
DEAD_LETTERS = Counter("encore_dead_letters_total", "Events sent to the DLQ", ["topic", "reason"])
DROPPED_CONTEXTS = Counter(
    "encore_dropped_contexts_total",
    "Interactions applied without their recommendation context (it named an unknown arm)",
    ["topic"],
)
CAS_RETRIES = Counter(
    "encore_commit_conflicts_total", "Batches retried after a lost CAS", ["topic"]
)
GAPS = Counter(
    "encore_offset_gaps_total", "Batches refused for starting past the applied offset", ["topic"]
)
INFRA_ERRORS = Counter(
    "encore_infra_errors_total", "Redis/broker failures (batch retried)", ["topic", "kind"]
)
APPLY_SECONDS = Histogram(
    "encore_apply_seconds",
    "Time to apply one batch",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_EVENTS = Histogram(
    "encore_batch_events",
    "Events per applied batch",
    ["topic"],
    buckets=(1, 10, 50, 100, 500, 1_000, 5_000, 20_000),
)
LAG = Gauge(
    "encore_consumer_lag", "High watermark minus next offset to apply", ["topic", "partition"]
)
APPLIED_OFFSET = Gauge("encore_applied_offset", "Last applied offset", ["topic", "partition"])
REPLAY_PROGRESS = Gauge(
    "encore_replay_remaining", "Records left for the replay to apply", ["topic", "partition"]
)
ITEM_SPACE = Gauge("encore_item_space_info", "Item space version in use", ["version"])


def observe_batch(topic: str, partition: int, result: Any, seconds: float) -> None:
    """Record one applied batch."""
    for kind, n in result.by_type.items():
        EVENTS.labels(topic, kind).inc(n)
    if result.duplicates:
        DUPLICATES.labels(topic).inc(result.duplicates)
    if result.stale_records:
        STALE.labels(topic).inc(result.stale_records)
    if result.dropped_contexts:
        DROPPED_CONTEXTS.labels(topic).inc(result.dropped_contexts)
    APPLY_SECONDS.labels(topic).observe(seconds)
    BATCH_EVENTS.labels(topic).observe(result.applied)
    APPLIED_OFFSET.labels(topic, str(partition)).set(result.offset)
