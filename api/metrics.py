"""Prometheus metrics of the API."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_SECONDS = Histogram(
    "encore_http_request_seconds", "Request latency", ["route", "status"], buckets=BUCKETS
)
STAGE_SECONDS = Histogram(
    "encore_stage_seconds", "Latency of one stage of a request", ["route", "stage"], buckets=BUCKETS
)
CANDIDATES = Counter("encore_candidates_total", "Candidates gathered per source", ["source"])
CACHE = Counter("encore_cache_total", "Cache lookups", ["cache", "result"])
ARM_PULLS = Counter("encore_arm_pulls_total", "Recommendation lists served per bandit arm", ["arm"])
ARM_REWARD = Gauge("encore_arm_reward_mean", "Posterior mean reward per bandit arm", ["arm"])
ARTIFACT_VERSION = Gauge("encore_artifact_info", "Artifact version served", ["kind", "version"])
ARTIFACT_FAILURES = Counter(
    "encore_artifact_load_failures_total", "Artifact versions refused", ["kind"]
)
DEGRADED = Counter(
    "encore_degraded_responses_total", "Responses served without a dependency", ["reason"]
)
INGESTED = Counter("encore_ingested_events_total", "Events accepted by the ingest API", ["type"])
SERVED = Counter(
    "encore_served_lists_total",
    "Served personal lists for the recommendations topic, by outcome "
    "(sent, buffer_full, no_broker, send_failed, invalid)",
    ["outcome"],
)
REJECTED = Counter("encore_ingest_rejected_total", "Ingest requests refused", ["status"])
OVERLOADED = Counter(
    "encore_overloaded_total", "Requests refused with 503: the CPU worker pool was full"
)
