"""Hand-made audio features of a recording (pure: arrays in, arrays out).

One STFT of up to 30 s of 22.05 kHz mono feeds every feature: tempo, beat
strength (onset autocorrelation), onset strength and rate, 20 MFCC means and
standard deviations, spectral centroid, rolloff and flux, 12 chroma means, RMS,
zero-crossing rate, and a Krumhansl major-minus-minor score with key clarity
(:data:`FEATURES`). The batch audio step (``batch/audio.py``) computes them for
the catalog; the API computes them for an uploaded clip that matched nothing, and
places the row in the catalog's audio space with the published reducer
(:func:`reduce`), so both sides describe audio the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 22_050
MAX_SECONDS = 30.0
N_FFT, HOP = 2048, 512
N_MFCC = 20
AUDIO_DIM = 16
PITCHES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

FEATURES: tuple[str, ...] = (
    "tempo",
    "beat_strength",
    "onset_mean",
    "onset_std",
    "onset_rate",
    *(f"mfcc{i}_mean" for i in range(N_MFCC)),
    *(f"mfcc{i}_std" for i in range(N_MFCC)),
    "centroid_mean",
    "centroid_std",
    "rolloff_mean",
    "rolloff_std",
    "flux_mean",
    "flux_std",
    *(f"chroma_{p}" for p in PITCHES),
    "rms_mean",
    "rms_std",
    "zcr_mean",
    "zcr_std",
    "mode_major_minus_minor",
    "key_clarity",
)


def key_profile(chroma: np.ndarray) -> tuple[float, float]:
    """(best major minus best minor correlation, margin of the best key over the next)."""
    c = chroma - chroma.mean()
    scores = {}
    for mode, prof in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        p = prof - prof.mean()
        with np.errstate(invalid="ignore", divide="ignore"):  # flat chroma: no key, nan
            scores[mode] = np.array([np.corrcoef(c, np.roll(p, k))[0, 1] for k in range(12)])
    ranked = np.sort(np.nan_to_num(np.concatenate([scores["major"], scores["minor"]])))[::-1]
    diff = float(np.nan_to_num(scores["major"].max() - scores["minor"].max()))
    return diff, float(ranked[0] - ranked[1])


def extract(y: np.ndarray) -> np.ndarray:
    """The :data:`FEATURES` vector of mono audio at :data:`SAMPLE_RATE`."""
    import librosa

    y = np.asarray(y, dtype=np.float32)[: int(MAX_SECONDS * SAMPLE_RATE)]
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    logmel = librosa.power_to_db(
        librosa.feature.melspectrogram(S=spec**2, sr=SAMPLE_RATE, n_mels=64)
    )
    onset = librosa.onset.onset_strength(S=logmel, sr=SAMPLE_RATE, hop_length=HOP)
    tempo = float(librosa.feature.tempo(onset_envelope=onset, sr=SAMPLE_RATE, hop_length=HOP)[0])
    ac = librosa.autocorrelate(onset - onset.mean())
    beat_strength = float(ac[1:].max() / (ac[0] + 1e-9)) if ac.size > 1 else 0.0
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=N_MFCC)
    centroid = librosa.feature.spectral_centroid(S=spec, sr=SAMPLE_RATE)[0]
    rolloff = librosa.feature.spectral_rolloff(S=spec, sr=SAMPLE_RATE, roll_percent=0.85)[0]
    norm_spec = spec / (spec.sum(axis=0, keepdims=True) + 1e-9)
    flux = np.sqrt((np.maximum(np.diff(norm_spec, axis=1), 0) ** 2).sum(axis=0))
    if flux.size == 0:
        flux = np.zeros(1)
    chroma = librosa.feature.chroma_stft(S=spec**2, sr=SAMPLE_RATE, tuning=0.0).mean(axis=1)
    rms = librosa.feature.rms(S=spec, frame_length=N_FFT)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)[0]
    mode_score, clarity = key_profile(chroma)
    onsets = librosa.onset.onset_detect(onset_envelope=onset, sr=SAMPLE_RATE, hop_length=HOP)
    seconds = y.size / SAMPLE_RATE
    v = np.concatenate(
        [
            [tempo, beat_strength, onset.mean(), onset.std(), len(onsets) / seconds],
            mfcc.mean(axis=1),
            mfcc.std(axis=1),
            [centroid.mean() / SAMPLE_RATE, centroid.std() / SAMPLE_RATE],
            [rolloff.mean() / SAMPLE_RATE, rolloff.std() / SAMPLE_RATE],
            [flux.mean(), flux.std()],
            chroma,
            [rms.mean(), rms.std(), zcr.mean(), zcr.std(), mode_score, clarity],
        ]
    )
    return np.asarray(np.nan_to_num(v), dtype=np.float32)


def reduce(
    rows: np.ndarray, mean: np.ndarray, std: np.ndarray, components: np.ndarray, dim: int
) -> np.ndarray:
    """Rows of :data:`FEATURES` placed in a published audio space: standardised, projected
    on the reducer's components (zero-padded to ``dim``), L2-normalised."""
    z = (np.atleast_2d(np.asarray(rows, dtype=np.float64)) - mean) / std
    p = z @ np.asarray(components, dtype=np.float64).T
    if p.shape[1] < dim:
        p = np.hstack([p, np.zeros((p.shape[0], dim - p.shape[1]))])
    return np.asarray(p / (np.linalg.norm(p, axis=1, keepdims=True) + 1e-9), dtype=np.float32)


@dataclass(frozen=True)
class AudioSpace:
    """A published audio space: the reducer the content job fitted (``audio_mean``,
    ``audio_std``, ``audio_components``) and the size of its vectors."""

    mean: np.ndarray
    std: np.ndarray
    components: np.ndarray
    dim: int

    def __post_init__(self) -> None:
        n = len(FEATURES)
        if self.mean.shape != (n,) or self.std.shape != (n,) or self.components.ndim != 2:
            raise ValueError("audio space: reducer arrays of the wrong shape")
        if self.components.shape[1] != n or self.components.shape[0] > self.dim:
            raise ValueError("audio space: components do not fit the features or the size")
        if not (np.isfinite(self.std).all() and (self.std > 0).all()):
            raise ValueError("audio space: deviations must be finite and positive")

    def place(self, rows: np.ndarray) -> np.ndarray:
        """Feature rows as unit vectors of this space (:func:`reduce`)."""
        return reduce(rows, self.mean, self.std, self.components, self.dim)


def embed_clip(y: np.ndarray, space: AudioSpace) -> np.ndarray:
    """A recording's unit vector in a published audio space (mono at :data:`SAMPLE_RATE`,
    the first :data:`MAX_SECONDS` used)."""
    return np.asarray(space.place(extract(y)[None, :])[0])
