"""Reading and redriving the dead-letter topics (used by the CLI and the admin API).

A dead letter is identified by ``(topic, partition, offset, member)`` of the bad
part; a worker that crashed between sending a dead letter and committing its
batch sends it again, so readers de-duplicate on that identity.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.codec import decode_record, dlq_original, not_after_ms
from models.io.kafka_read import PartitionReader
from models.io.producer import EventProducer
from models.topics import SOURCE_TOPICS, dlq_topic


@dataclass
class DeadLetters:
    """Distinct dead letters read from the DLQ topics."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0

    def by_reason(self) -> dict[str, int]:
        """Count per ``(topic, reason)``, as ``"topic/reason"``."""
        return dict(sorted(Counter(f"{e['topic']}/{e['reason']}" for e in self.entries).items()))


async def read_dead_letters(
    bootstrap: str, topics: list[str] | None = None, idle_ms: int = 1_500
) -> DeadLetters:
    """Every distinct dead letter of the given source topics (default: all), up to the
    high watermarks the dead-letter topics had when the read began."""
    sources = topics or list(SOURCE_TOPICS)
    out = DeadLetters()
    seen: set[tuple[str, int, int, int]] = set()
    async with PartitionReader(bootstrap, poll_ms=250, idle_ms=idle_ms) as reader:
        async for batch in reader.read([dlq_topic(t) for t in sources]):
            for m in batch.records:
                value = m.value or b""
                doc = orjson.loads(value)
                ident = (doc["topic"], doc["partition"], doc["offset"], doc.get("member", 0))
                if ident in seen:
                    out.duplicates += 1
                    continue
                seen.add(ident)
                doc["dlq_offset"] = m.offset
                doc["original"] = dlq_original(value)
                out.entries.append(doc)
    return out


@dataclass
class RedriveReport:
    """Outcome of a redrive."""

    sent: int = 0
    still_invalid: int = 0
    reasons_left: dict[str, int] = field(default_factory=dict)


async def redrive(
    bootstrap: str,
    partitions: int,
    *,
    topics: list[str] | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    max_record_bytes: int = 1_048_576,
    max_skew_ms: int = 300_000,
) -> RedriveReport:
    """Re-send dead letters that now validate to their proper topic and partition.

    Events keep their ``event_id``, so redriving twice is harmless (the dedup window
    drops the second copy); ones that still fail (an event still more than
    ``max_skew_ms`` in the future among them) stay in the DLQ and are counted.
    """
    letters = await read_dead_letters(bootstrap, topics)
    report = RedriveReport()
    good: list[Any] = []
    left: Counter[str] = Counter()
    for e in letters.entries:
        if reason and e["reason"] != reason:
            continue
        limit = not_after_ms(None, int(time.time() * 1000), max_skew_ms)
        decoded = decode_record(e["original"], max_bytes=max_record_bytes, not_after_ms=limit)
        if decoded.events and not decoded.rejected:
            good.extend(decoded.events)
        else:
            report.still_invalid += 1
            left[e["reason"]] += 1
    report.reasons_left = dict(left)
    if good and not dry_run:
        async with EventProducer(bootstrap, partitions, max_record_bytes=max_record_bytes) as p:
            await p.send_events(good)
    report.sent = len(good)
    return report
