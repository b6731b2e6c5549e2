"""The personal taste classifier: what a listener plays through or likes, from the sound
and the words of a track.

Per listener with enough labelled events, batch training (``batch/taste.py``) fits
an L2-regularised logistic regression on a track's content features and publishes
the ``taste`` artifact; this module holds what serving needs, as pure functions:

* **Labels** (:func:`label`): a like, or a play with completion at least the fold's
  ``full_play``, is positive; a skip or a dislike is negative; partial plays and
  unlikes say nothing either way.
* **Features** (:meth:`Taste.features`): the track's unit audio vector (the content
  artifact's 16-d reduced librosa features; zeros where a track has no sound) and
  its unit text vector projected on the catalog's first text components, joined and
  standardised with the catalog's means and deviations.
* **Signal** (:meth:`Taste.signal`): how much more likely than usual the listener is
  to receive the track well, ``max(0, (p - prior) / (1 - prior))``, with ``p`` the
  classifier's probability and ``prior`` the listener's share of positive labels in
  training. It is already on one scale for every request (0: no better than the
  listener's usual track; 1: certain), so ranking uses it as given
  (:data:`models.rerank.CALIBRATED`), not min-max normalised.

Ranking (:mod:`models.ranking`) gives this signal only to *cold* tracks, those no
collaborative model knows yet (new releases, scanned files nobody else has): the
collaborative signals already describe the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TASTE_WEIGHT = 0.2
"""Default blend weight of the taste signal (added to the arm's weights)."""


def label(kind: str, completion: float, full_play: float) -> int:
    """1 for a positive event, 0 for a negative one, -1 for one that says neither."""
    if kind == "like" or (kind == "play" and completion >= full_play):
        return 1
    if kind in ("skip", "dislike"):
        return 0
    return -1


def labels(
    kinds: Sequence[str] | np.ndarray, completion: np.ndarray, full_play: float
) -> np.ndarray:
    """:func:`label` of event columns, as an int8 array."""
    kind = np.asarray(kinds, dtype=object).astype(str)
    done = np.nan_to_num(np.asarray(completion, np.float64)) >= full_play
    out = np.full(kind.size, -1, np.int8)
    out[(kind == "like") | ((kind == "play") & done)] = 1
    out[(kind == "skip") | (kind == "dislike")] = 0
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9))


@dataclass(frozen=True)
class Space:
    """How a track's content vectors become classifier features (fitted on a catalog)."""

    audio_dim: int
    text_mean: np.ndarray  # (text_dim,)
    text_components: np.ndarray  # (k, text_dim), orthonormal rows
    mean: np.ndarray  # (audio_dim + k,)
    std: np.ndarray  # (audio_dim + k,), > 0

    @property
    def dim(self) -> int:
        return self.audio_dim + int(self.text_components.shape[0])

    def raw(self, audio: np.ndarray | None, text: np.ndarray) -> np.ndarray:
        """Unstandardised features: unit audio (zeros without it), projected unit text."""
        t = _unit(text)
        a = np.zeros((len(t), self.audio_dim)) if audio is None else _unit(audio)
        if a.shape != (len(t), self.audio_dim):
            raise ValueError(f"audio of shape {a.shape} for {len(t)} texts")
        return np.hstack([a, (t - self.text_mean) @ self.text_components.T])

    def features(self, audio: np.ndarray | None, text: np.ndarray) -> np.ndarray:
        """Standardised features of tracks (rows of ``audio`` and ``text``)."""
        return np.asarray((self.raw(audio, text) - self.mean) / self.std)


def fit_space(audio: np.ndarray, text: np.ndarray, text_dims: int) -> Space:
    """The feature space of a catalog: its first ``text_dims`` text components (SVD of
    the centred unit text vectors) and the joined features' means and deviations."""
    t = _unit(text)
    mean = t.mean(axis=0)
    _u, _s, vt = np.linalg.svd(t - mean, full_matrices=False)
    k = max(1, min(text_dims, vt.shape[0]))
    a = _unit(audio)
    space = Space(int(a.shape[1]), mean, vt[:k], np.zeros(a.shape[1] + k), np.ones(a.shape[1] + k))
    raw = space.raw(a, t)
    std = raw.std(axis=0)
    return Space(space.audio_dim, mean, vt[:k], raw.mean(axis=0), np.where(std > 1e-9, std, 1.0))


@dataclass(frozen=True)
class Taste:
    """Per-listener classifiers over one feature space (the ``taste`` artifact)."""

    version: str
    content_version: str  # the content version whose vectors the features come from
    users: dict[str, int]
    weights: np.ndarray  # (users, dim)
    bias: np.ndarray  # (users,)
    prior: np.ndarray  # (users,) share of positive labels in training
    space: Space

    def probability(self, user_id: str, features: np.ndarray) -> np.ndarray | None:
        """P(positive) of each feature row for the listener; None for a listener
        without a classifier."""
        u = self.users.get(user_id)
        if u is None:
            return None
        z = np.asarray(features, np.float64) @ self.weights[u].astype(np.float64)
        return np.asarray(1.0 / (1.0 + np.exp(-(z + float(self.bias[u])))))

    def signal(self, user_id: str, features: np.ndarray) -> np.ndarray | None:
        """The ranking signal (module doc) of each feature row; None as above."""
        p = self.probability(user_id, features)
        if p is None:
            return None
        prior = float(self.prior[self.users[user_id]])
        return np.asarray(np.clip((p - prior) / max(1.0 - prior, 1e-6), 0.0, 1.0))


def make_taste(
    version: str,
    content_version: str,
    user_ids: Sequence[str],
    weights: np.ndarray,
    bias: np.ndarray,
    prior: np.ndarray,
    space: Space,
) -> Taste:
    """Validate the arrays (ValueError on inconsistent shapes or non-finite values)."""
    w = np.asarray(weights, np.float32)
    b = np.asarray(bias, np.float32)
    p = np.asarray(prior, np.float32)
    n, d = len(user_ids), space.dim
    if w.shape != (n, d) or b.shape != (n,) or p.shape != (n,):
        raise ValueError(
            f"taste/{version}: weights {w.shape}, bias {b.shape}, prior {p.shape} for "
            f"{n} users and {d} features"
        )
    if space.text_components.shape[1] != space.text_mean.shape[0] or space.mean.shape != (d,):
        raise ValueError(f"taste/{version}: inconsistent feature space")
    arrays = (w, b, p, space.text_mean, space.text_components, space.mean, space.std)
    if not all(np.isfinite(a).all() for a in arrays) or (space.std <= 0).any():
        raise ValueError(f"taste/{version}: non-finite values")
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"taste/{version}: priors outside [0, 1]")
    users = {u: i for i, u in enumerate(user_ids)}
    if len(users) != n:
        raise ValueError(f"taste/{version}: duplicate user ids")
    return Taste(version, content_version, users, w, b, p, space)


@dataclass(frozen=True)
class Cold:
    """The content rows no collaborative model knows, with their taste features."""

    rows: np.ndarray  # int64 item rows (all below ``Items.known``)
    features: np.ndarray  # (len(rows), dim)
    at: np.ndarray  # int64 per item row below ``known``: index into ``rows``, -1: not cold


def cold_rows(known: int, collaborative: Sequence[np.ndarray]) -> np.ndarray:
    """Item rows below ``known`` (the content rows) that none of the collaborative models'
    row maps (``Items.of`` values) covers."""
    cold = np.ones(known, bool)
    for rows in collaborative:
        rows = np.asarray(rows, np.int64)
        cold[rows[rows < known]] = False
    return np.flatnonzero(cold)


def cold_of(
    taste: Taste,
    content_version: str,
    audio: np.ndarray | None,
    text: np.ndarray,
    known: int,
    collaborative: Sequence[np.ndarray],
) -> Cold | None:
    """The cold rows of a served content version (its ``audio`` and ``text`` rows are the
    first ``known`` item rows) with their features; None when the classifiers were fitted
    beside another content version (its audio space may differ) or another audio size."""
    if taste.content_version != content_version:
        return None
    if audio is not None and audio.shape[1] != taste.space.audio_dim:
        return None
    rows = cold_rows(known, collaborative)
    at = np.full(known, -1, np.int64)
    at[rows] = np.arange(len(rows))
    features = taste.space.features(None if audio is None else audio[rows], text[rows])
    return Cold(rows, features, at)
