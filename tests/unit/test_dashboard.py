"""Every metric the provisioned Grafana dashboard plots is one the processes export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import api.metrics
import streams.metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/encore.json"


def test_dashboard_metrics_exist() -> None:
    assert api.metrics.HTTP_SECONDS
    assert streams.metrics.EVENTS
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    exported = {m.name + x for m in REGISTRY.collect() for x in suffixes.get(m.type, ("",))}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {
        name
        for p in panels
        for t in p["targets"]
        for name in re.findall(r"\b(encore_\w+)", t["expr"])
    }
    assert len(used) >= 8
    assert used <= exported, used - exported
