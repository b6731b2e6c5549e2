"""The taste classifier's report: ``taste.md`` (tables) and ``taste.json`` (every number).

The command that made the report is its first line; :func:`tables` is also what
``encore eval-taste`` prints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return "" if value is None else str(value)


def auc_table(held_out: dict[str, Any]) -> str:
    """Held-out AUC per scorer."""
    lines = [
        "| scorer | AUC (pooled) | AUC (mean per listener) | listeners |",
        "|---|---|---|---|",
    ]
    for name, r in held_out["results"].items():
        lines.append(
            f"| {name} | {_cell(r['auc_pooled'])} | {_cell(r['auc_mean_per_listener'])} "
            f"| {r['listeners']} |"
        )
    return "\n".join(lines)


def cold_table(served: dict[str, Any]) -> str:
    """Served lists per taste weight."""
    rows = served["results"]
    cols = list(next(iter(rows.values())))
    lines = ["| served | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def tables(result: dict[str, Any]) -> str:
    """Every table of the report, with a heading each."""
    served = []
    for arm, r in result["served_cold"].items():
        served += [f"## Served lists, held-out positives on cold tracks: arm {arm}", ""]
        served += [cold_table(r), ""]
    return "\n".join(
        [
            "## Held-out events, audio-dependent taste",
            "",
            auc_table(result["held_out"]),
            "",
            "## Control: the plain demo (taste does not depend on the audio)",
            "",
            auc_table(result["control_plain_demo"]),
            "",
            *served,
        ]
    )


def write(result: dict[str, Any], out: Path, command: str) -> Path:
    """Write ``taste.md`` and ``taste.json`` under ``out``; returns the markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "taste.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    pop, held = result["population"], result["held_out"]
    served = next(iter(result["served_cold"].values()))
    arms = ", ".join(f"`{a}`" for a in result["served_cold"])
    lines = [
        f"Made with: `{command}`",
        "",
        "# Personal taste classifier",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{result.get('seconds', 0):.0f} s; population `{pop['generator']}` seed {pop['seed']}, "
        f"audio_taste {pop['audio_taste']} ({pop['tracks']} tracks, {pop['events']} events); "
        f"classifier settings `{json.dumps(result['settings'], sort_keys=True)}`.",
        "",
        f"- Held-out events: the last 20% of each listener's labelled events; "
        f"{held['train_events']} training and {held['held_out_events']} held-out events of "
        f"{held['listeners_with_classifier']} listeners with a classifier "
        f"(positive share {held['held_out_positive_share']}). 0.5 is chance.",
        f"- Served: {served['cold_tracks']} cold tracks (no event before the split, so no "
        f"collaborative vector), every one offered as a fresh arrival; "
        f"{served['listeners']} listeners with a held-out positive on one, served "
        f"{served['list_length']} tracks through models.ranking under the hand-set weights "
        f"of the arms {arms}.",
        "",
        tables(result),
        "",
    ]
    md = out / "taste.md"
    md.write_text("\n".join(lines))
    return md
