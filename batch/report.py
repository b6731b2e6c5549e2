"""The evaluation report: a markdown table, PNG plots and the raw numbers as JSON.

Files go to ``<out>/<protocol>.md``, ``<protocol>-*.png`` and
``<protocol>.json`` (``-quick`` appended for ``--quick`` runs, so a quick run
never overwrites the real report). The command that made the report is its
first line.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from batch.evaluate import EvalResult, Row

TARGETS = {"recall@10": 0.206, "ndcg@10": 0.197}
"""RecBole's published LightGCN on Last.fm 2k, random 80/10/10, full ranking."""
COLUMNS = (
    ("recall@10", "R@10"),
    ("recall@20", "R@20"),
    ("ndcg@10", "N@10"),
    ("ndcg@20", "N@20"),
    ("hit@10", "HR@10"),
    ("mrr@10", "MRR@10"),
    ("coverage@10", "cov@10"),
    ("ild@10", "ILD@10"),
    ("artist_diversity@10", "artists@10"),
    ("novelty@10", "novelty@10"),
)
BASELINES = ("popularity", "item-kNN")
COLLABORATIVE = ("EASE", "ALS", "LightGCN", "hybrid")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(rows: list[Row]) -> str:
    """The results table (test metrics, plus validation NDCG@10)."""
    cols = [(k, h) for k, h in COLUMNS if any(k in r.test for r in rows)]
    lines = [
        "| model | " + " | ".join(h for _, h in cols) + " | valid N@10 |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for r in rows:
        cells = [_fmt(r.test[k]) if k in r.test else "" for k, _ in cols]
        lines.append(f"| {r.model} | " + " | ".join(cells) + f" | {r.valid_ndcg:.4f} |")
    return "\n".join(lines)


def goals(result: EvalResult) -> list[str]:
    """Pass/fail lines for the Last.fm quality goals (random protocol only)."""
    if result.dataset != "lastfm-2k" or result.protocol != "random":
        return []
    by = {r.model: r.test for r in result.rows}
    out = []
    for name in ("LightGCN", "ALS"):
        m = by[name]
        ok = all(m[k] >= round(v, 3) - 5e-4 for k, v in TARGETS.items())
        out.append(
            f"- {name} vs RecBole's LightGCN (R@10 0.206, N@10 0.197): R@10 {m['recall@10']:.4f}, "
            f"N@10 {m['ndcg@10']:.4f}: **{'met' if ok else 'not met'}**."
        )
    best = max(by["ALS"]["ndcg@10"], by["LightGCN"]["ndcg@10"])
    h = by["hybrid"]
    ok = h["ndcg@10"] > best and h["recall@10"] > max(
        by["ALS"]["recall@10"], by["LightGCN"]["recall@10"]
    )
    out.append(
        f"- hybrid beats ALS and LightGCN: R@10 {h['recall@10']:.4f}, N@10 {h['ndcg@10']:.4f}: "
        f"**{'met' if ok else 'not met'}**."
    )
    models = [r for r in result.rows if r.model in COLLABORATIVE]
    floor = {k: max(by[b][k] for b in BASELINES) for k in ("recall@10", "ndcg@10")}
    losers = [r.model for r in models if any(r.test[k] <= floor[k] for k in floor)]
    out.append(
        f"- {', '.join(COLLABORATIVE)} each beat popularity and item-kNN on R@10 and N@10: "
        + ("**met**." if not losers else f"**not met** ({', '.join(losers)}).")
    )
    for fold in (r for r in result.rows if r.model.startswith("fold-in")):
        beats = [b for b in BASELINES if all(fold.test[k] > by[b][k] for k in floor)]
        out.append(
            f"- `{fold.model}` (the streams' real-time vector, not a trained model) beats "
            + (" and ".join(beats) if beats else "neither baseline")
            + f": R@10 {fold.test['recall@10']:.4f}, N@10 {fold.test['ndcg@10']:.4f}."
        )
    return out


def fold_in(rows: list[Row]) -> list[str]:
    """What the fold-in rows measure and how close they come to ALS."""
    folds = [r for r in rows if r.model.startswith("fold-in")]
    out = [
        "The stream workers keep each user as a decayed, signed sum of L2-normalised ALS item "
        "vectors (`models/state.py`: `event_weight`, `fold_vector`). The fold-in rows rebuild "
        "that vector from each user's train interactions (as the events `encore load` sends) "
        f"and rank with it. Its mean cosine to the user's ALS factors is "
        f"{folds[0].extra['mean_cosine_to_ALS_user_factors']:.3f}.",
        "",
    ]
    for r in folds:
        how = "the unit item vectors" if "real-time" in r.model else "the raw ALS item factors"
        out.append(
            f"- `{r.model}`: ranked by inner product with {how}: R@10 {r.test['recall@10']:.4f}, "
            f"N@10 {r.test['ndcg@10']:.4f}; its top-10 shares "
            f"{r.extra['overlap@10_with_ALS']:.0%} of the items of the ALS top-10."
        )
    out.append(
        "- The raw factors' norms carry each item's share of the confidence mass, so ranking "
        "against them (not against an index of normalised factors) restores most of ALS's "
        "accuracy from the same real-time vector."
    )
    return out


MODEL_ROWS = ("popularity", "item-kNN", "EASE", "ALS", "tags (content)", "LightGCN", "hybrid")
PRIOR_MIX = "served: policy at its prior"


def served(result: EvalResult) -> list[str]:
    """What the API serves against the models: goal lines and the tuned policy."""
    by = {r.model: r.test for r in result.rows}
    mix = by.get(PRIOR_MIX)
    if mix is None:
        return []
    models = {n: by[n] for n in MODEL_ROWS if n in by}
    best = max(models, key=lambda n: models[n]["ndcg@10"])
    b = models[best]
    ok = mix["recall@10"] >= b["recall@10"] and mix["ndcg@10"] >= b["ndcg@10"]
    out = [
        "Rows starting with `served:` are the lists the API returns for a personal request "
        "(`models/ranking.py`, the same code the API runs), computed in-process for every test "
        "user: every candidate source the models give (the hybrid's precomputed list, ALS "
        "search, the real-time taste vector folded from the user's train and validation events "
        "as a stream worker folds them, popular), each arm's blend, MMR, artist spacing and the "
        "history filter. An item the list repeats from the user's history is a miss. The "
        "policy row draws each user's arm as a new deployment does (priors only, the API's "
        "seed).",
        "",
        f"- served mix at its prior vs the best model row ({best}): R@10 {mix['recall@10']:.4f} "
        f"vs {b['recall@10']:.4f}, N@10 {mix['ndcg@10']:.4f} vs {b['ndcg@10']:.4f} "
        f"({mix['ndcg@10'] / max(b['ndcg@10'], 1e-9):.1%}): **{'met' if ok else 'not met'}**.",
    ]
    als = by.get("ALS")
    for key, name in (("coverage@10", "coverage"), ("artist_diversity@10", "artist diversity")):
        if als is not None and key in mix and key in als:
            ok = mix[key] >= als[key]
            out.append(
                f"- served mix {name}@10 {mix[key]:.4f} vs ALS {als[key]:.4f}: "
                f"**{'met' if ok else 'not met'}**."
            )
    info = result.served
    policy = info.get("policy", {})
    pulls: dict[str, int] = next(
        (r.params.get("pulls", {}) for r in result.rows if r.model == PRIOR_MIX), {}
    )
    total = max(sum(pulls.values()), 1)
    out += [
        "",
        f"Tuned on validation (`batch/served.py`): base blend "
        f"`{json.dumps({k: v for k, v in info.get('base_weights', {}).items() if v})}`, "
        f"MMR lambda {info.get('mmr_lambda')}; each arm is the base leaning toward its own "
        f"signal. Priors: mean 0.5 x the arm's validation N@10 over the best arm's, worth "
        f"{info.get('prior_strength', '')} pseudo-observations. Bounded exploration: "
        f"{1 - policy.get('explore_share', 1):.0%} of requests go to the uncapped arm with "
        f"the best posterior mean, {policy.get('explore_share', 1):.0%} to a Thompson draw "
        f"over the others. Capped arms (under 90% of the best arm's validation N@10, or "
        f"leaning on a signal this data lacks: "
        f"{', '.join(info.get('unmeasured_arms', [])) or 'none'}) never lead, so they are "
        f"served only when exploring.",
        "",
        "| arm | weights | capped | prior mean | share of test users at the prior |",
        "|---|---|---|---|---|",
    ]
    for arm, weights in policy.get("arms", {}).items():
        p = policy.get("priors", {}).get(arm, {"alpha": 1, "beta": 1})
        shown = json.dumps({k: v for k, v in weights.items() if v})
        out.append(
            f"| {arm} | `{shown}` | {'yes' if arm in policy.get('capped', []) else 'no'} | "
            f"{p['alpha'] / (p['alpha'] + p['beta']):.3f} | {pulls.get(arm, 0) / total:.1%} |"
        )
    return out + context_lines(info.get("context", {}))


def context_lines(ctx: dict[str, Any]) -> list[str]:
    """The contextual-policy check of ``batch.served.context_check``."""
    out = ["", "### Context: would an arm per time of day serve better lists?", ""]
    if not ctx:
        return []
    if not ctx.get("measurable"):
        out.append(
            f"Not measurable on this data: {ctx.get('reason', 'no context')}. Skip streaks "
            "(no skips in the data) and query type (the query route has no arms) cannot be "
            "measured offline either, so the published policy uses no context."
        )
        return out
    lo, hi = ctx["ci95"]
    out += [
        f"Context: {ctx['context']}. On validation each daypart gets the uncapped arm with "
        f"the best N@10 of its users; on test every user is served their daypart's arm, "
        f"against the single leader ({ctx['leader']}) for everyone.",
        "",
        "| daypart (UTC) | validation users | test users | arm chosen on validation |",
        "|---|---|---|---|",
    ]
    for name, part in ctx["dayparts"].items():
        out.append(f"| {name} | {part['valid_users']} | {part['test_users']} | {part['arm']} |")
    verdict = (
        "it helps, so a contextual policy is worth serving"
        if ctx["helps"]
        else "the interval includes zero or is below it, so the published policy uses no context"
    )
    out += [
        "",
        f"Test N@10: contextual {ctx['contextual_test_ndcg@10']:.4f}, leader "
        f"{ctx['leader_test_ndcg@10']:.4f}; difference {ctx['delta_ndcg@10']:+.4f} "
        f"(95% paired bootstrap interval {lo:+.4f} to {hi:+.4f}): {verdict}. Skip streaks "
        "(no skips in the data) and query type (the query route has no arms) cannot be "
        "measured offline.",
    ]
    return out


def params_table(rows: list[Row]) -> str:
    """Chosen settings and fit time per model."""
    lines = ["| model | chosen settings (by validation NDCG@10) | fit s |", "|---|---|---|"]
    for r in rows:
        shown = json.dumps({k: v for k, v in r.params.items() if v is not None}, sort_keys=True)
        lines.append(f"| {r.model} | `{shown}` | {r.fit_seconds:.1f} |")
    return "\n".join(lines)


def plots(result: EvalResult, out: Path, stem: str) -> list[str]:
    """Write the PNGs; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    rows = result.rows
    fig, ax = plt.subplots(figsize=(10, 4.5))
    keys = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        ax.bar([i + j * width for i in range(len(rows))], [r.test[k] for r in rows], width, label=k)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([r.model for r in rows], rotation=20, ha="right", fontsize=8)
    if result.dataset == "lastfm-2k" and result.protocol == "random":
        ax.axhline(
            TARGETS["recall@10"], color="grey", ls="--", lw=0.8, label="RecBole LightGCN R@10"
        )
    ax.set_title(f"{result.dataset}, {result.protocol} split: test accuracy (full ranking)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    names.append(f"{stem}-accuracy.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)

    if result.curve:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([c["epoch"] for c in result.curve], [c["valid_ndcg@10"] for c in result.curve])
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation NDCG@10")
        ax.set_title("LightGCN early stopping")
        fig.tight_layout()
        names.append(f"{stem}-lightgcn.png")
        fig.savefig(out / names[-1], dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r.test["novelty@10"], r.test["ndcg@10"], s=20 + 2000 * r.test["coverage@10"])
        ax.annotate(r.model, (r.test["novelty@10"], r.test["ndcg@10"]), fontsize=8)
    ax.set_xlabel("novelty@10 (mean -log2 popularity)")
    ax.set_ylabel("NDCG@10")
    ax.set_title("accuracy vs novelty (marker size: coverage@10)")
    fig.tight_layout()
    names.append(f"{stem}-tradeoff.png")
    fig.savefig(out / names[-1], dpi=110)
    plt.close(fig)
    return names


def write(result: EvalResult, out: Path, command: str) -> Path:
    """Write the markdown report, plots and JSON; returns the markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    stem = result.protocol + ("-quick" if result.quick else "")
    pngs = plots(result, out, stem)
    d, s = result.data, result.split
    lines = [
        f"Made with: `{command}`",
        "",
        f"# {result.dataset}: {result.protocol} split{' (quick)' if result.quick else ''}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{result.seconds / 60:.1f} min on one CPU thread; seed {result.seed}.",
        "",
        "## Data and protocol",
        "",
        f"- {d['users']} users, {d['items']} items, {d['interactions']} interactions "
        f"({result.dataset}, no filtering).",
        f"- Split: `{json.dumps(s, sort_keys=True)}`.",
        "- Full ranking over every item. Validation masks train items; test masks train and "
        "validation items (RecBole's full-sort evaluation). Models are fitted on train only; "
        "settings are chosen by validation NDCG@10.",
        "- Metrics averaged over users with held-out items. Coverage, ILD (1 - mean pairwise "
        "cosine of items' train listener vectors), novelty (mean -log2 share of train users) and "
        "artist diversity are over the top-10 lists of the test users.",
        "",
        "## Results (test)",
        "",
        table(result.rows),
        "",
        *([*goals(result), ""] if goals(result) else []),
        *(
            ["## Served lists: what the API returns", "", *served(result), ""]
            if served(result)
            else []
        ),
        "## Fold-in: the real-time vector against ALS",
        "",
        *fold_in(result.rows),
        "",
        "## Chosen settings",
        "",
        params_table(result.rows),
        "",
        "## Plots",
        "",
        *[f"![{name}]({name})" for name in pngs],
        "",
    ]
    if result.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    md = out / f"{stem}.md"
    md.write_text("\n".join(lines))
    raw = asdict(result)
    raw["command"] = command
    (out / f"{stem}.json").write_text(json.dumps(raw, indent=2, sort_keys=True, default=str))
    return md
