"""Last.fm 2k tag assignments: the content signal, and the only dates the data has.

``user_taggedartists.dat`` says which user gave which tag to which artist, and
when. Two uses:

* the item x tag matrix of the content model. A user's tag on an artist shows
  the user knows the artist, so assignments whose (user, artist) pair is held
  out for validation or test are dropped (:func:`item_tags`); keeping them
  leaks the answer (TagKNN N@10 0.124 with them, 0.108 without).
* a date per (user, artist) pair: the user's first tag on it
  (:func:`first_tag_dates`). Listening counts carry no time at all, so this is
  the only temporal signal; it dates about a fifth of the pairs, and tagging
  time is not listening time, so the temporal protocol on Last.fm is a sanity
  check, not a benchmark. Dates before 2005 (a few say 1956) are ignored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

MIN_YEAR = 2005


@dataclass
class TagAssignments:
    """One row per assignment, as indices into the training data's users and items."""

    users: np.ndarray
    items: np.ndarray
    tags: np.ndarray
    times: np.ndarray
    n_tags: int


def read_assignments(folder: Path, users: list[str], items: list[str]) -> TagAssignments:
    """Assignments of known users and items (ids as ``lfm:u<user>`` / ``lfm:<artist>``)."""
    u_of = {u: i for i, u in enumerate(users)}
    i_of = {a: i for i, a in enumerate(items)}
    tag_of: dict[str, int] = {}
    rows: list[tuple[int, int, int, float]] = []
    with (folder / "user_taggedartists.dat").open(encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for r in reader:
            if len(r) < 6:
                continue
            u, i = u_of.get(f"lfm:u{r[0]}"), i_of.get(f"lfm:{r[1]}")
            if u is None or i is None:
                continue
            try:
                when = datetime(int(r[5]), int(r[4]), int(r[3]), tzinfo=UTC).timestamp()
            except ValueError:
                when = 0.0
            rows.append((u, i, tag_of.setdefault(r[2], len(tag_of)), when))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return TagAssignments(
        arr[:, 0].astype(np.int64),
        arr[:, 1].astype(np.int64),
        arr[:, 2].astype(np.int64),
        arr[:, 3],
        len(tag_of),
    )


def item_tags(a: TagAssignments, shape: tuple[int, int], held_out: sp.csr_matrix) -> sp.csr_matrix:
    """Items x tags assignment counts without the held-out (user, item) pairs."""
    keep = np.asarray(held_out.tocsr()[a.users, a.items]).ravel() == 0
    m = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (a.items[keep], a.tags[keep])),
        shape=(shape[1], a.n_tags),
    )
    m.sum_duplicates()
    return m


def first_tag_dates(a: TagAssignments, shape: tuple[int, int]) -> sp.csr_matrix:
    """Users x items: the first tag time (epoch seconds) of each pair tagged since 2005."""
    ok = a.times >= datetime(MIN_YEAR, 1, 1, tzinfo=UTC).timestamp()
    key = a.users[ok] * shape[1] + a.items[ok]
    pairs, inverse = np.unique(key, return_inverse=True)
    first = np.full(pairs.size, np.inf)
    np.minimum.at(first, inverse, a.times[ok])
    return sp.csr_matrix((first, (pairs // shape[1], pairs % shape[1])), shape=shape)
