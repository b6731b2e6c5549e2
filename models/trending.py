"""Trending over a sliding window, kept up to date bucket by bucket (pure).

The stream fold counts plays per interactions partition in time buckets (one
sorted set per partition and bucket) and, in the same atomic write, how many
plays each bucket has counted so far (:meth:`models.keys.Keys.trending_plays`).
A reader keeps the top rows of every bucket of the window it has read, and the
sum over them; each refresh reads every bucket's play count (one command per
partition), then re-reads only the buckets whose count changed, usually the
current one of each partition. A 24 h window of 5 min buckets over 6 partitions
is 1,728 buckets; reading all of them every second cost a request-blocking
pipeline of 1,728 commands and a Python merge of up to 172,800 rows.

A bucket written before play counts existed (no count) is read once and kept.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from operator import itemgetter

Bucket = tuple[int, int]
"""(partition, bucket start in epoch seconds)."""
Rows = Sequence[tuple[str, float]]


def window(now_s: float, bucket_s: int, window_s: int) -> range:
    """Starts of the buckets in the window that ends with the bucket holding ``now_s``."""
    last = int(now_s) // bucket_s * bucket_s
    return range(last - window_s + bucket_s, last + 1, bucket_s)


class TrendingWindow:
    """Top rows per bucket and their sum over the window (one per reader process)."""

    def __init__(self) -> None:
        self.plays: dict[Bucket, int | None] = {}
        self.rows: dict[Bucket, Rows] = {}
        self.total: dict[str, float] = {}
        self._top: tuple[int, list[tuple[str, float]]] | None = None

    def stale(self, plays: dict[Bucket, int | None]) -> list[Bucket]:
        """Forget buckets that left the window (``plays`` lists every bucket in it, with
        its play count, None when it has none) and say which to re-read: those not read
        yet and those whose count changed. An empty bucket (count 0 after expiry, or
        nothing stored) is dropped without a read once it had a count."""
        for gone in [b for b in self.rows if b not in plays]:
            self._set(gone, ())
            del self.rows[gone]
            self.plays.pop(gone, None)
        todo = []
        for b, n in plays.items():
            if b in self.plays and self.plays[b] == n:
                continue
            if n is None and b in self.plays:
                self._set(b, ())  # its count expired: the bucket is gone
                self.rows[b] = ()
                self.plays[b] = None
                continue
            todo.append(b)
        return todo

    def update(self, read: Iterable[tuple[Bucket, int | None, Rows]]) -> None:
        """Take the rows re-read for some buckets, with the play counts they had."""
        for b, n, rows in read:
            self._set(b, rows)
            self.rows[b] = rows
            self.plays[b] = n

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` tracks with the most plays over the window, most first."""
        if self._top is None or self._top[0] < k:
            self._top = (k, heapq.nlargest(k, self.total.items(), key=itemgetter(1)))
        return self._top[1][:k]

    def _set(self, b: Bucket, rows: Rows) -> None:
        old = self.rows.get(b, ())
        if not old and not rows:
            return
        total = self.total
        for member, score in old:
            left = total[member] - score
            if left:
                total[member] = left
            else:
                del total[member]
        for member, score in rows:
            total[member] = total.get(member, 0.0) + score
        self._top = None
