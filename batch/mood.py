"""Valence/arousal for every track: audio cues, tags and text, calibrated on labelled clips.

* :class:`CueModel` maps audio features to mood through fixed-sign cues from the
  music-emotion literature (arousal: tempo, onset strength and rate,
  brightness, with half weight on flux and loudness; valence: major mode, with
  half weight on tempo and brightness and a quarter on key clarity). Only the
  cue statistics and one affine map per dimension are fitted, on the labelled
  packaged clips (mood folder -> a prior point, BPM -> arousal). Why not a free
  regression: 28 clips from 10 prompts memorise absolute key and give absurd
  answers on other audio; the cue model stays plausible.
* :class:`TextMood` is the ridge from sentence embeddings to (valence, arousal),
  trained on the lexicon in templates (:data:`models.mood.TEMPLATES`) and word
  pairs; with the lexicon's embedded centroids it answers free-text queries
  (:func:`models.mood.text_mood`) and gives a prior for tracks without audio.
* :func:`track_moods` blends what each track has: audio cues (weight 0.5, or
  0.25 from imputed features), the lexicon mean of its tags (0.3) and its text
  (0.2), renormalised over the available parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from batch.audio import FEATURES
from models.mood import LEXICON, TEMPLATES, tag_mood

MOOD_PRIORS: dict[str, tuple[float, float]] = {
    "happy": (0.80, 0.45),
    "energetic": (0.45, 0.85),
    "calm": (0.45, -0.70),
    "tender": (0.60, -0.35),
    "nostalgic": (-0.10, -0.30),
}
"""Where each packaged mood folder sits on the circumplex (hand-assigned)."""
AROUSAL_CUES = {
    "tempo": 1.0,
    "onset_mean": 1.0,
    "onset_rate": 1.0,
    "centroid_mean": 1.0,
    "flux_mean": 0.5,
    "rms_mean": 0.5,
}
VALENCE_CUES = {
    "mode_major_minus_minor": 1.0,
    "tempo": 0.5,
    "centroid_mean": 0.5,
    "key_clarity": 0.25,
}
RIDGE_TEMPLATES = (0, 1, 6, 8, 11, 13)
"""Which of :data:`models.mood.TEMPLATES` train the ridge (a short and a sentence-like mix)."""
WORD_PAIRS = 150


def mood_target(mood: str, bpm: float | None) -> np.ndarray:
    """Calibration target of a labelled clip: the folder's prior, arousal half from BPM."""
    v, a = MOOD_PRIORS[mood]
    if bpm is not None:
        a = 0.5 * a + 0.5 * float(np.clip((bpm - 100.0) / 40.0, -1.0, 1.0))
    return np.array([v, a], dtype=np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (average ranks for ties are not needed at this size)."""
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


class CueModel:
    """Fixed-sign weighted z-scores of perceptual cues, with a fitted affine map."""

    def __init__(self) -> None:
        self.cues = (VALENCE_CUES, AROUSAL_CUES)
        self.index = [[FEATURES.index(n) for n in c] for c in self.cues]
        self.weights = [np.array(list(c.values())) for c in self.cues]
        self.affine: list[tuple[float, float]] = [(0.5, 0.0), (0.5, 0.0)]
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    @staticmethod
    def _transform(x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64)).copy()
        x[:, 0] = np.log2(np.maximum(x[:, 0], 1.0))  # tempo in octaves
        return x

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated cue scores (n, 2)."""
        assert self.mean is not None
        assert self.std is not None
        z = (self._transform(x) - self.mean) / self.std
        return np.stack(
            [z[:, i] @ w / w.sum() for i, w in zip(self.index, self.weights, strict=True)], 1
        )

    def fit_stats(self, x: np.ndarray) -> CueModel:
        """Cue statistics from a set of tracks (no labels)."""
        t = self._transform(x)
        self.mean, self.std = t.mean(axis=0), t.std(axis=0) + 1e-9
        return self

    def calibrate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Fit statistics and the affine maps on labelled tracks; returns fit quality."""
        self.fit_stats(x)
        r = self.raw(x)
        self.affine = [
            (float(a), float(b)) for a, b in (np.polyfit(r[:, d], y[:, d], 1) for d in range(2))
        ]
        pred = self.predict(x)
        out: dict[str, float] = {"n": float(len(y))}
        for d, name in enumerate(("valence", "arousal")):
            out[f"{name}_spearman"] = spearman(r[:, d], y[:, d])
            resid = ((pred[:, d] - y[:, d]) ** 2).sum()
            total = ((y[:, d] - y[:, d].mean()) ** 2).sum() or 1.0
            out[f"{name}_r2_in_sample"] = float(1.0 - resid / total)
        out["quadrant_accuracy"] = float(np.mean((pred >= 0) == (y >= 0)))
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, 2) valence and arousal in [-1, 1]."""
        r = self.raw(x)
        cols = [np.polyval(np.asarray(self.affine[d]), r[:, d]) for d in range(2)]
        return np.asarray(np.clip(np.stack(cols, axis=1), -1.0, 1.0))

    def params(self) -> dict[str, Any]:
        """Everything needed to re-apply the model (JSON-ready)."""
        return {
            "valence_cues": VALENCE_CUES,
            "arousal_cues": AROUSAL_CUES,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "affine": [list(map(float, a)) for a in self.affine],
        }


def lexicon_training_set(seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, targets, word index) from lexicon templates and random word pairs."""
    rng = np.random.default_rng(seed)
    words = list(LEXICON)
    texts, targets, groups = [], [], []
    templates = [TEMPLATES[i] for i in RIDGE_TEMPLATES]
    for g, w in enumerate(words):
        for t in templates:
            texts.append(t.format(w=w))
            targets.append(LEXICON[w])
            groups.append(g)
    for _ in range(WORD_PAIRS):
        i, j = rng.choice(len(words), 2, replace=False)
        texts.append(f"{words[i]} and {words[j]}")
        targets.append(tuple(np.mean([LEXICON[words[i]], LEXICON[words[j]]], axis=0)))
        groups.append(-1)
    return texts, np.array(targets, dtype=np.float64), np.array(groups)


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge with an unpenalised intercept: (weights (d, k), bias (k,))."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w.astype(np.float32), (ym - xm @ w).astype(np.float32)


class TextMood:
    """Text embedding -> (valence, arousal): ridge plus embedded lexicon centroids."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, embed: Callable[[Sequence[str]], np.ndarray]) -> TextMood:
        texts, targets, groups = lexicon_training_set()
        x = embed(texts)
        self.weights, self.bias = ridge(x, targets, self.alpha)
        words = list(LEXICON)
        centroids = np.stack([x[groups == g].mean(axis=0) for g in range(len(words))])
        self.words = words
        self.vectors = (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).astype(
            np.float32
        )
        self.values = np.array([LEXICON[w] for w in words], dtype=np.float32)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Ridge (valence, arousal) of embeddings, clipped to [-1, 1]."""
        return np.asarray(np.clip(np.asarray(x) @ self.weights + self.bias, -1.0, 1.0))


def track_moods(
    audio_mood: np.ndarray | None,
    audio_weight: np.ndarray,
    tags: Sequence[Sequence[str]],
    text_mood: np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """Blend audio cues (``audio_weight`` per track: 0.5 for real audio, 0.25 for imputed
    features, 0 for none), the tag lexicon (0.3) and the text (0.2); returns the (n, 2)
    moods and, per track, which parts were used (e.g. ``"audio+tags+text"``)."""
    out = np.zeros((len(tags), 2), dtype=np.float32)
    used: list[str] = []
    for i, track_tags in enumerate(tags):
        parts: list[tuple[float, np.ndarray, str]] = []
        if audio_mood is not None and audio_weight[i] > 0:
            parts.append((float(audio_weight[i]), audio_mood[i], "audio"))
        tm = tag_mood(track_tags)
        if tm is not None:
            parts.append((0.3, np.array(tm), "tags"))
        parts.append((0.2, text_mood[i], "text"))
        total = sum(w for w, _, _ in parts)
        out[i] = np.clip(sum(w * v for w, v, _ in parts) / total, -1.0, 1.0)
        used.append("+".join(name for _, _, name in parts))
    return out, used
