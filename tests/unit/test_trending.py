"""The reader's trending window: only changed buckets are re-read, sums stay exact."""

from __future__ import annotations

from collections import Counter

from models.trending import TrendingWindow, window


def _sum(buckets: dict[tuple[int, int], list[tuple[str, float]]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for rows in buckets.values():
        for member, score in rows:
            total[member] += score
    return total


def test_the_window_ends_with_the_bucket_of_now() -> None:
    assert list(window(1_000, 300, 1_200)) == [0, 300, 600, 900]
    assert list(window(1_199, 300, 300)) == [900]


def test_only_new_and_changed_buckets_are_read_and_the_sum_follows() -> None:
    w = TrendingWindow()
    stored = {(0, 0): [("a", 3.0), ("b", 1.0)], (1, 0): [("a", 1.0)], (0, 300): []}
    counts: dict[tuple[int, int], int | None] = {(0, 0): 4, (1, 0): 1, (0, 300): None}
    todo = w.stale(counts)
    assert sorted(todo) == [(0, 0), (0, 300), (1, 0)]  # everything once
    w.update((b, counts[b], stored[b]) for b in todo)
    assert w.top(10) == [("a", 4.0), ("b", 1.0)]
    assert w.stale(counts) == []  # nothing changed: nothing to read
    stored[(0, 300)] = [("c", 6.0)]
    counts[(0, 300)] = 6
    stored[(1, 0)] = [("a", 2.0), ("b", 1.0)]
    counts[(1, 0)] = 3
    todo = w.stale(counts)
    assert sorted(todo) == [(0, 300), (1, 0)]
    w.update((b, counts[b], stored[b]) for b in todo)
    assert dict(w.top(10)) == dict(_sum(stored))
    assert w.top(1) == [("c", 6.0)]


def test_buckets_that_leave_the_window_or_expire_are_subtracted() -> None:
    w = TrendingWindow()
    counts: dict[tuple[int, int], int | None] = {(0, 0): 2, (0, 300): 1}
    w.update([((0, 0), 2, [("a", 2.0)]), ((0, 300), 1, [("b", 1.0)])])
    assert w.stale(counts) == []
    assert w.stale({(0, 300): 1, (0, 600): None}) == [(0, 600)]  # (0, 0) left the window
    w.update([((0, 600), None, [])])
    assert w.top(5) == [("b", 1.0)]
    assert w.stale({(0, 300): None, (0, 600): None}) == []  # (0, 300)'s count expired
    assert w.top(5) == []
    assert w.total == {}
