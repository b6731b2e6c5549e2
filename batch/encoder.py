"""A learned audio encoder: a small CNN over log-mel patches, trained on the catalog's audio.

Self-supervised (SimCLR-style): two augmented 3 s crops of one track are a positive
pair, the crops of the other tracks in the batch are negatives, and the loss is
NT-Xent (InfoNCE over cosine similarities at a temperature). No label is used.
An augmented crop starts anywhere in the track (so the encoder learns what stays
the same across a track, not where a crop sits), is shifted by a few tens of
milliseconds, scaled by a random gain and gets white noise at a random
signal-to-noise ratio.

The network reads mono audio at :data:`batch.audio.SAMPLE_RATE`: a power STFT
(1024 samples, hop 512) on a 64-band mel scale, log-compressed and centred per
patch (so gain changes nothing but the noise floor), four blocks of 3x3
convolution, group norm, ReLU and 2x2 max pooling (16, 32, 64, 64 channels), a
mean and max over what is left of time and frequency, and a linear map to
``dim`` numbers, L2-normalised. A track's embedding is the normalised mean of
the embeddings of patches every half patch over its first 30 s. Training feeds
the embeddings through a small projection head (dropped afterwards), one native
thread (:func:`batch.threads.one_thread`), Adam, fixed seeds.

The ``audio_encoder`` artifact (:func:`publish_encoder`):

=========================  ===============================================
``weights.safetensors``    the encoder's tensors (safetensors: no pickle)
``track_ids.json``         tracks it was trained on
``embeddings.npy``         float32 n x dim: their embeddings, unit rows
=========================  ===============================================

The manifest's ``params`` hold the architecture (``dim``, ``width``), the
feature settings and the training settings, so :func:`load_encoder` rebuilds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from batch.audio import MAX_SECONDS, SAMPLE_RATE
from batch.threads import one_thread
from models.io.artifacts import Artifact, ArtifactStore, save_array, save_json

KIND = "audio_encoder"
N_FFT, HOP, N_MELS = 1024, 512, 64
PATCH_FRAMES = 128
PATCH = N_FFT + HOP * (PATCH_FRAMES - 1)
"""Samples of one patch: 66,048, about 3 s."""
WEIGHTS = "weights.safetensors"


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture and training settings (``ENCORE_AUDIO_ENCODER_*``)."""

    dim: int = 32
    width: int = 16
    steps: int = 300
    batch: int = 32
    lr: float = 2e-3
    temperature: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class Augment:
    """The random changes of one training crop (and of the evaluation's query crops)."""

    shift_s: float = 0.05
    gain_db: float = 6.0
    snr_db: tuple[float, float] = (10.0, 30.0)

    def apply(self, y: np.ndarray, rng: np.random.Generator, length: int = PATCH) -> np.ndarray:
        """A crop of ``length`` samples of ``y`` from anywhere in it, shifted by up to
        ``shift_s``, with a gain of up to +-``gain_db`` and white noise at an SNR drawn
        from ``snr_db``."""
        y = _fit(y, length)
        jitter = int(self.shift_s * SAMPLE_RATE)
        start = int(rng.integers(0, y.size - length + 1))
        start = int(np.clip(start + rng.integers(-jitter, jitter + 1), 0, y.size - length))
        gain = np.float32(10 ** (rng.uniform(-1, 1) * self.gain_db / 20))
        crop = y[start : start + length] * gain
        power = float(np.mean(crop**2)) + 1e-10
        snr = rng.uniform(*self.snr_db)
        noise = rng.standard_normal(length).astype(np.float32) * np.sqrt(power / 10 ** (snr / 10))
        return np.asarray(crop + noise, dtype=np.float32)


def _fit(y: np.ndarray, length: int) -> np.ndarray:
    """``y`` as float32, zero-padded to at least ``length`` samples."""
    y = np.asarray(y, dtype=np.float32)
    return np.pad(y, (0, length - y.size)) if y.size < length else y


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the ml extra is missing
        raise ImportError("the audio encoder needs torch: install the `ml` extra") from exc
    return torch


def build(dim: int = 32, width: int = 16) -> Any:
    """A fresh encoder (a ``torch.nn.Module``): patches of audio in, unit vectors out."""
    torch = _torch()
    import librosa

    nn = torch.nn
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)

    def block(cin: int, cout: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.GroupNorm(min(8, cout // 4), cout),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )

    class Encoder(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.dim, self.width = dim, width
            self.register_buffer("mel", torch.from_numpy(mel.astype(np.float32)), persistent=False)
            self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
            self.convs = nn.Sequential(
                block(1, width), block(width, 2 * width), block(2 * width, 4 * width),
                block(4 * width, 4 * width),
            )  # fmt: skip
            self.out = nn.Linear(8 * width, dim)
            self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

        def logmel(self, wave: Any) -> Any:
            spec = torch.stft(
                wave, N_FFT, HOP, window=self.window, center=False, return_complex=True
            )
            x = torch.log(self.mel @ spec.abs() ** 2 + 1e-6)
            return (x - x.mean(dim=(1, 2), keepdim=True)).unsqueeze(1) / 4.0

        def features(self, wave: Any) -> Any:
            h = self.convs(self.logmel(wave)).flatten(2)
            return self.out(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))

        def forward(self, wave: Any) -> Any:
            return torch.nn.functional.normalize(self.features(wave), dim=1)

        def project(self, wave: Any) -> Any:
            return torch.nn.functional.normalize(self.head(self.features(wave)), dim=1)

    return Encoder()


def nt_xent(z: Any, temperature: float) -> Any:
    """NT-Xent of ``2n`` unit rows where rows ``i`` and ``i + n`` are the positive pairs."""
    torch = _torch()
    n = z.shape[0] // 2
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return torch.nn.functional.cross_entropy(sim, target)


def train(
    waves: Sequence[np.ndarray],
    config: EncoderConfig = EncoderConfig(),
    *,
    augment: Augment = Augment(),
    progress: Callable[[int], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train an encoder on the audio of ``waves`` (mono, :data:`SAMPLE_RATE`); returns
    it (in eval mode) and the training report (loss at the start and end, seconds)."""
    torch = _torch()
    if len(waves) < 2:
        raise ValueError("the encoder needs the audio of at least two tracks")
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    with one_thread():
        torch.manual_seed(config.seed)
        model = build(config.dim, config.width)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=1e-5)
        model.train()
        losses: list[float] = []
        size = min(config.batch, len(waves))
        for _ in range(config.steps):
            picked = rng.choice(len(waves), size=size, replace=False)
            views = [augment.apply(waves[i], rng) for i in picked]
            views += [augment.apply(waves[i], rng) for i in picked]
            loss = nt_xent(model.project(torch.from_numpy(np.stack(views))), config.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(1)
        model.eval()
    tail = max(1, len(losses) // 10)
    report = {
        "loss_first": round(float(np.mean(losses[:tail])), 4),
        "loss_last": round(float(np.mean(losses[-tail:])), 4),
        "train_seconds": round(time.perf_counter() - started, 1),
        "tracks": len(waves),
    }
    return model, report


def windows(y: np.ndarray, seconds: float | None = MAX_SECONDS) -> np.ndarray:
    """Patches every half patch over the first ``seconds`` of ``y`` (at least one)."""
    y = _fit(y if seconds is None else y[: int(seconds * SAMPLE_RATE)], PATCH)
    starts = range(0, y.size - PATCH + 1, PATCH // 2)
    return np.stack([y[s : s + PATCH] for s in starts])


def embed(model: Any, waves: Sequence[np.ndarray], seconds: float | None = MAX_SECONDS) -> Any:
    """One unit vector per track: the normalised mean of its patches' embeddings."""
    torch = _torch()
    out = np.zeros((len(waves), model.dim), dtype=np.float32)
    with one_thread(), torch.no_grad():
        for i, y in enumerate(waves):
            v = model(torch.from_numpy(windows(y, seconds))).mean(dim=0).numpy()
            out[i] = v / max(float(np.linalg.norm(v)), 1e-9)
    return out


def publish_encoder(
    store: ArtifactStore,
    model: Any,
    config: EncoderConfig,
    track_ids: Sequence[str],
    embeddings: np.ndarray,
    *,
    metrics: dict[str, Any],
    data: dict[str, Any] | None = None,
) -> str:
    """Publish a trained encoder as an ``audio_encoder`` version (module doc)."""
    from safetensors.torch import save_file

    if embeddings.shape != (len(track_ids), config.dim) or not np.isfinite(embeddings).all():
        raise ValueError("encoder embeddings do not match the tracks, or are not finite")
    path = store.stage(KIND)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path / WEIGHTS))
    save_json(path, "track_ids.json", list(track_ids))
    save_array(path, "embeddings", embeddings.astype(np.float32))
    params = {
        **asdict(config),
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "hop": HOP,
        "n_mels": N_MELS,
        "patch_frames": PATCH_FRAMES,
        "seconds": MAX_SECONDS,
    }
    return store.publish(KIND, path, params=params, metrics=metrics, data=data)


def load_encoder(art: Artifact) -> Any:
    """The encoder of a loaded ``audio_encoder`` artifact (tensors only, never pickle)."""
    from safetensors.torch import load_file

    p = art.manifest["params"]
    if (p["sample_rate"], p["n_fft"], p["hop"], p["n_mels"], p["patch_frames"]) != (
        SAMPLE_RATE, N_FFT, HOP, N_MELS, PATCH_FRAMES,
    ):  # fmt: skip
        raise ValueError(f"{art.kind}/{art.version}: features this code does not compute")
    model = build(int(p["dim"]), int(p["width"]))
    model.load_state_dict(load_file(str(art.file(WEIGHTS))))
    return model.eval()
