"""Implicit-feedback ALS (Hu, Koren, Volinsky 2008) with the ``implicit`` library, one thread.

Confidence is ``C = 1 + alpha * w(count)`` (:func:`batch.data.confidence`),
passed to ``implicit`` as the matrix itself (implicit 0.7 uses the values as
confidence and its own ``alpha`` only multiplies them, so it stays 1). On
Last.fm 2k the best validation setting was BM25 weighting with alpha 0.01,
64 factors, regularisation 10 and 15 sweeps; the popular defaults
(regularisation 0.05, alpha 10) reach a third of that.

Its item factors are the real-time item space: the stream workers fold each
user's events into a sum of (L2-normalised) item factors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from batch.data import confidence
from batch.threads import one_thread


class ALS:
    """``implicit`` CPU ALS behind the common ``fit``/``scores`` shape."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 10.0,
        iterations: int = 15,
        scheme: str = "bm25",
        alpha: float | None = None,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.scheme = scheme
        self.alpha = alpha
        self.seed = seed

    def params(self) -> dict[str, object]:
        """The settings that define the model, for manifests and reports."""
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "confidence": self.scheme,
            "alpha": self.alpha,
            "seed": self.seed,
        }

    def fit(self, train: sp.csr_matrix, progress: Callable[[int], None] | None = None) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares

        c = confidence(train, self.scheme, self.alpha)
        callback = None
        if progress is not None:
            report = progress

            def callback(iteration: int, _elapsed: float, _loss: float) -> None:
                report(iteration)

        with one_thread():  # implicit checks the BLAS pool size when the model is made
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                num_threads=1,
                random_state=self.seed,
            )
            model.fit(c, show_progress=False, callback=callback)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float32)
