"""``encore eval-audio``: the learned audio encoder against the librosa features, on real music.

The music is the 28 labelled clips of ``immich-memories-music`` (five moods of 5 or
6 clips, two styles of 13 and 15). Methods, each one unit vector per clip:

* ``librosa 69 (standardised)``: the 69 features of :mod:`batch.audio`, z-scored
  over the clips;
* ``librosa 16 (reduced)``: those through :class:`batch.audio.Reducer`, the
  vectors of the content artifact's audio index by default;
* ``learned``: :mod:`batch.encoder` trained on the clips' audio (self-supervised,
  no label seen), one encoder per seed.

Measures:

* **same-label precision@k**: the share of each clip's k nearest other clips
  (cosine) with its label; k = 4 for mood (under the smallest class, 5) and 10
  for style. Chance is the share of other clips with the same label.
* **crop recovery**: a flat inner-product index of the full-clip vectors (the
  first 30 s), queried with an augmented 10 s crop of each clip (a random offset,
  a gain within +-6 dB, white noise at 20 dB SNR); recall@1 and @5 of the source
  clip. The same crops go to every method of a seed.
* **held-out half**: the encoder trained on half the clips (every other clip in
  mood, style, name order) and measured on the other half only, among themselves:
  crop recovery and same-style precision@5, against librosa on the same half.

The encoder is trained on the clips it is measured on: that is the design (it
learns from the catalog's own audio without labels); the labels are used only
here. The held-out rows say how it does on music it never heard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from batch import audio, audio_sources, encoder
from models.index import build_index

K_MOOD, K_STYLE, K_HELD_STYLE = 4, 10, 5
CROP_SECONDS, SNR_DB, GAIN_DB = 10.0, 20.0, 6.0
Log = Callable[[str], None]


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1."""
    x = np.asarray(x, dtype=np.float32)
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9))


def precision_at(vectors: np.ndarray, labels: Sequence[str], k: int) -> float:
    """Mean share of same-label clips among each clip's ``k`` nearest others (cosine)."""
    v = unit(vectors)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    lab = np.asarray(labels)
    near = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return float(np.mean(lab[near] == lab[:, None]))


def chance(labels: Sequence[str]) -> float:
    """Expected same-label share of a random other clip."""
    lab = np.asarray(labels)
    return float(np.mean([(np.sum(lab == x) - 1) / (lab.size - 1) for x in lab]))


def recovery(index_vectors: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Recall@1 and @5 of query ``i`` finding row ``i`` in a flat index of the rows."""
    index = build_index(unit(index_vectors), "flat")
    k = min(5, index_vectors.shape[0])
    _, found = index.search(unit(queries), k)
    truth = np.arange(queries.shape[0])[:, None]
    return {
        "recall@1": float(np.mean(found[:, 0] == truth[:, 0])),
        "recall@5": float(np.mean((found == truth).any(axis=1))),
    }


def query_crops(waves: Sequence[np.ndarray], seed: int) -> list[np.ndarray]:
    """One augmented :data:`CROP_SECONDS` crop of each clip (see the module doc)."""
    rng = np.random.default_rng(10_000 + seed)
    aug = encoder.Augment(shift_s=0.0, gain_db=GAIN_DB, snr_db=(SNR_DB, SNR_DB))
    return [aug.apply(w, rng, int(CROP_SECONDS * audio.SAMPLE_RATE)) for w in waves]


def _librosa(raw: np.ndarray, qraw: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(clip vectors, query vectors) of both librosa methods, fitted on the clips."""
    mean, std = raw.mean(axis=0), raw.std(axis=0) + 1e-8
    reducer = audio.Reducer().fit(raw)
    return {
        "librosa 69 (standardised)": ((raw - mean) / std, (qraw - mean) / std),
        "librosa 16 (reduced)": (reducer.transform(raw), reducer.transform(qraw)),
    }


def _held_out_half(clips: Sequence[audio_sources.Clip]) -> tuple[list[int], list[int]]:
    order = sorted(range(len(clips)), key=lambda i: (clips[i].mood, clips[i].style or "", i))
    return sorted(order[0::2]), sorted(order[1::2])


def run(
    seeds: Sequence[int] = (0, 1, 2),
    config: encoder.EncoderConfig | None = None,
    *,
    held_out: bool = True,
    limit: int | None = None,
    log: Log = lambda _m: None,
) -> dict[str, Any]:
    """Every method on every measure, per seed and averaged (module doc); with ``limit``,
    on that many clips spread over the sorted list (a smoke run)."""
    started = time.perf_counter()
    config = config or encoder.EncoderConfig()
    clips = audio_sources.clips()
    if limit is not None and limit < len(clips):
        clips = [clips[i] for i in np.linspace(0, len(clips) - 1, limit).astype(int)]
    if len(clips) < 6:
        raise RuntimeError("the labelled clips are missing: pip install -e '.[data]'")
    waves = [audio.window(audio.load(c.path, audio.SAMPLE_RATE, None), "start") for c in clips]
    raw = np.stack([audio.extract(w) for w in waves]).astype(np.float64)
    moods = [c.mood for c in clips]
    styles = [c.style or "" for c in clips]
    train_half, test_half = _held_out_half(clips)
    log(f"{len(clips)} clips decoded, librosa features in {time.perf_counter() - started:.1f}s")
    per_seed: list[dict[str, dict[str, float]]] = []
    train_seconds: list[float] = []
    reports: list[dict[str, Any]] = []
    for seed in seeds:
        crops = query_crops(waves, seed)
        qraw = np.stack([audio.extract(q) for q in crops]).astype(np.float64)
        methods = _librosa(raw, qraw)
        model, report = encoder.train(waves, replace(config, seed=seed))
        train_seconds.append(report["train_seconds"])
        reports.append(report)
        methods["learned"] = (encoder.embed(model, waves), encoder.embed(model, crops))
        rows: dict[str, dict[str, float]] = {}
        for name, (full, query) in methods.items():
            rows[name] = {
                f"mood_p@{K_MOOD}": precision_at(full, moods, K_MOOD),
                f"style_p@{K_STYLE}": precision_at(full, styles, K_STYLE),
                **recovery(full, query),
            }
        if held_out:
            halves = (train_half, test_half)
            _held_out_rows(rows, waves, crops, raw, qraw, styles, halves, config, seed)
        per_seed.append(rows)
        log(f"seed {seed}: " + json.dumps(rows["learned"]) + f" ({report['train_seconds']}s)")
    names = list(per_seed[0])
    keys = list(per_seed[0][names[0]])
    mean = {n: {k: float(np.mean([r[n][k] for r in per_seed])) for k in keys} for n in names}
    spread = {n: {k: float(np.std([r[n][k] for r in per_seed])) for k in keys} for n in names}
    return {
        "clips": len(clips),
        "seeds": list(seeds),
        "k": {"mood": K_MOOD, "style": K_STYLE, "held_out_style": K_HELD_STYLE},
        "chance": {
            f"mood_p@{K_MOOD}": chance(moods),
            f"style_p@{K_STYLE}": chance(styles),
            "recall@1": 1 / len(clips),
            "recall@5": 5 / len(clips),
            "held_out_recall@1": 1 / len(test_half),
            "held_out_recall@5": 5 / len(test_half),
            f"held_out_style_p@{K_HELD_STYLE}": chance([styles[i] for i in test_half]),
        },
        "crop": {"seconds": CROP_SECONDS, "snr_db": SNR_DB, "gain_db": GAIN_DB},
        "encoder": {**{k: v for k, v in vars(config).items() if k != "seed"}},
        "train_seconds": {
            "mean": float(np.mean(train_seconds)),
            "max": float(np.max(train_seconds)),
            "tracks": len(clips),
        },
        "loss": reports,
        "mean": mean,
        "std": spread,
        "per_seed": per_seed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _held_out_rows(
    rows: dict[str, dict[str, float]],
    waves: Sequence[np.ndarray],
    crops: Sequence[np.ndarray],
    raw: np.ndarray,
    qraw: np.ndarray,
    styles: Sequence[str],
    halves: tuple[Sequence[int], Sequence[int]],
    config: encoder.EncoderConfig,
    seed: int,
) -> None:
    """Add the held-out-half measures to ``rows``: librosa fitted on the test half's
    clips (it has nothing to learn but their scale), the encoder trained on the other."""
    train_half, t = halves[0], list(halves[1])
    half_styles = [styles[i] for i in t]
    methods = _librosa(raw[t], qraw[t])
    model, _ = encoder.train([waves[i] for i in train_half], replace(config, seed=seed))
    methods["learned"] = (
        encoder.embed(model, [waves[i] for i in t]),
        encoder.embed(model, [crops[i] for i in t]),
    )
    for name, (full, query) in methods.items():
        got = recovery(full, query)
        rows[name].update(
            {
                "held_out_recall@1": got["recall@1"],
                "held_out_recall@5": got["recall@5"],
                f"held_out_style_p@{K_HELD_STYLE}": precision_at(full, half_styles, K_HELD_STYLE),
            }
        )


COLUMNS = (
    (f"mood_p@{K_MOOD}", f"mood P@{K_MOOD}"),
    (f"style_p@{K_STYLE}", f"style P@{K_STYLE}"),
    ("recall@1", "crop R@1"),
    ("recall@5", "crop R@5"),
    ("held_out_recall@1", "held-out R@1"),
    ("held_out_recall@5", "held-out R@5"),
    (f"held_out_style_p@{K_HELD_STYLE}", f"held-out style P@{K_HELD_STYLE}"),
)


def table(result: dict[str, Any]) -> str:
    """Markdown table: mean (and spread over seeds where it is not zero) per method."""
    cols = [(k, h) for k, h in COLUMNS if k in result["chance"] and k in result["mean"]["learned"]]
    lines = ["| vectors | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---|" * len(cols)]
    for name, row in result["mean"].items():
        cells = []
        for k, _ in cols:
            sd = result["std"][name][k]
            cells.append(f"{row[k]:.3f}" + (f" ± {sd:.3f}" if sd > 5e-4 else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| chance | " + " | ".join(f"{result['chance'][k]:.3f}" for k, _ in cols) + " |")
    return "\n".join(lines)


def write(result: dict[str, Any], out: Path, command: str) -> Path:
    """``<out>/audio.md`` (the table and how it was measured) and ``<out>/audio.json``."""
    out.mkdir(parents=True, exist_ok=True)
    enc = result["encoder"]
    lines = [
        f"Made with: `{command}`",
        "",
        "# Audio vectors: learned encoder vs librosa features",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{result['seconds'] / 60:.1f} min on one CPU thread; seeds {result['seeds']} "
        "(mean ± standard deviation over seeds; librosa's precision does not depend on the seed).",
        "",
        f"- {result['clips']} labelled clips of `immich-memories-music` (5 moods, 2 styles).",
        f"- Precision@k: same-label share of each clip's k nearest other clips (mood k="
        f"{result['k']['mood']}, under the smallest class; style k={result['k']['style']}).",
        f"- Crop recovery: a flat index of the full-clip vectors queried with an augmented "
        f"{result['crop']['seconds']:g} s crop of each clip (random offset, gain within "
        f"±{result['crop']['gain_db']:g} dB, white noise at {result['crop']['snr_db']:g} dB SNR).",
        "- Held-out: the encoder trained on half the clips, measured on the other half only.",
        f"- Encoder: {enc['steps']} steps of {enc['batch']} tracks, dim {enc['dim']}, width "
        f"{enc['width']}, NT-Xent at temperature {enc['temperature']}; training "
        f"{result['train_seconds']['mean']:.0f} s on average (at most "
        f"{result['train_seconds']['max']:.0f} s) on {result['train_seconds']['tracks']} clips.",
        "",
        table(result),
        "",
    ]
    md = out / "audio.md"
    md.write_text("\n".join(lines))
    (out / "audio.json").write_text(
        json.dumps({**result, "command": command}, indent=2, sort_keys=True)
    )
    return md
