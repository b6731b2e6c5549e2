"""Train and publish the ``taste`` artifact: a classifier per listener of what they play
through or like, over the content artifact's audio and text vectors.

Each listener with at least ``ENCORE_BATCH_TASTE_MIN_EVENTS`` labelled events
(:func:`models.taste.label`) on tracks the content artifact has, and at least two
of each label, gets an L2-regularised logistic regression (scikit-learn, lbfgs,
``C = 1 / ENCORE_BATCH_TASTE_L2``) on the standardised features of
:class:`models.taste.Space`; the others get none, and ranking gives their cold
tracks no taste signal. Files (the contract ``api/bundle.py`` reads):

=========================  ===================================================
``user_ids.json``          listeners with a classifier, row order
``weights.npy``            float32 users x features
``bias.npy``               float32 per user
``prior.npy``              float32 per user: share of positive labels in training
``text_mean.npy``          float64 mean of the catalog's unit text vectors
``text_components.npy``    float64 first text components, rows
``feature_mean.npy``       float64 mean and deviation of the joined features over
``feature_std.npy``        the catalog, which standardise them
=========================  ===================================================

``params.content_version`` names the content version the features come from: the
API uses the classifiers only beside that version (its audio space is refitted
with each content version). Only ``.npy`` and JSON; no pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batch.data import Labels, TrainData
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.taste import Space, fit_space, make_taste


@dataclass
class Fitted:
    """Per-listener classifiers over one feature space, and how many were skipped why."""

    users: list[str]
    weights: np.ndarray
    bias: np.ndarray
    prior: np.ndarray
    space: Space
    info: dict[str, int] = field(default_factory=dict)


def fit_taste(
    labels: Labels,
    row: Mapping[str, int],
    audio: np.ndarray,
    text: np.ndarray,
    *,
    min_events: int,
    l2: float,
    text_dims: int,
    space: Space | None = None,
) -> Fitted:
    """Fit a classifier per listener with enough labelled events on tracks of ``row``
    (rows of ``audio`` and ``text``, the content artifact's vectors)."""
    from sklearn.linear_model import LogisticRegression

    space = space or fit_space(audio, text, text_dims)
    features = space.features(audio, text)
    at = np.fromiter((row.get(t, -1) for t in labels.track), np.int64, len(labels))
    known = labels.take(at >= 0)
    at = at[at >= 0]
    users, inverse = np.unique(known.user, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(users) + 1))
    out_users: list[str] = []
    weights, bias, prior = [], [], []
    info = {"users_fitted": 0, "skipped_few_events": 0, "skipped_one_label": 0, "events": 0}
    for j, user in enumerate(users.tolist()):
        idx = order[bounds[j] : bounds[j + 1]]
        y = known.positive[idx].astype(np.int64)
        if len(idx) < min_events:
            info["skipped_few_events"] += 1
            continue
        if min(int(y.sum()), int(len(y) - y.sum())) < 2:
            info["skipped_one_label"] += 1
            continue
        model = LogisticRegression(C=1.0 / l2, max_iter=500)
        model.fit(features[at[idx]], y)
        out_users.append(str(user))
        weights.append(model.coef_[0])
        bias.append(float(model.intercept_[0]))
        prior.append(float(y.mean()))
        info["users_fitted"] += 1
        info["events"] += len(idx)
    d = space.dim
    return Fitted(
        out_users,
        np.asarray(weights, np.float32).reshape(-1, d),
        np.asarray(bias, np.float32),
        np.asarray(prior, np.float32),
        space,
        info,
    )


def publish_taste(
    store: ArtifactStore,
    fitted: Fitted,
    content_version: str,
    *,
    params: Mapping[str, Any],
    data: Mapping[str, Any],
) -> str:
    """Publish ``fitted`` as the ``taste`` artifact (module doc), checked as the API
    checks it first."""
    make_taste(
        "unpublished",
        content_version,
        fitted.users,
        fitted.weights,
        fitted.bias,
        fitted.prior,
        fitted.space,
    )
    path = store.stage("taste")
    save_json(path, "user_ids.json", fitted.users)
    save_array(path, "weights", fitted.weights)
    save_array(path, "bias", fitted.bias)
    save_array(path, "prior", fitted.prior)
    save_array(path, "text_mean", fitted.space.text_mean)
    save_array(path, "text_components", fitted.space.text_components)
    save_array(path, "feature_mean", fitted.space.mean)
    save_array(path, "feature_std", fitted.space.std)
    return store.publish(
        "taste",
        path,
        params={
            **params,
            "content_version": content_version,
            "audio_dim": fitted.space.audio_dim,
            "text_dims": int(fitted.space.text_components.shape[0]),
        },
        metrics=dict(fitted.info),
        data=dict(data),
    )


def train_taste(
    store: ArtifactStore,
    data: TrainData,
    *,
    min_events: int,
    l2: float,
    text_dims: int,
    full_play: float,
) -> str:
    """Fit every listener's classifier from ``data``'s labelled events over the published
    content version's vectors, and publish the ``taste`` artifact."""
    if data.labels is None:
        raise ValueError("the taste classifier needs events (like, play, skip, dislike)")
    content = store.load("content")
    ids = content.json("item_ids.json")
    fitted = fit_taste(
        data.labels,
        {t: i for i, t in enumerate(ids)},
        content.array("audio.npy"),
        content.array("text.npy"),
        min_events=min_events,
        l2=l2,
        text_dims=text_dims,
    )
    params = {"min_events": min_events, "l2": l2, "full_play": full_play, "model": "logistic"}
    return publish_taste(store, fitted, content.version, params=params, data=data.info)
