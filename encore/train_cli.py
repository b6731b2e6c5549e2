"""Batch commands: ``encore train``, ``encore eval``, ``encore eval-audio``,
``encore eval-taste``, ``encore recommend-batch``.

:func:`register` adds them to the ``encore`` app; ``app`` here holds the same
commands for tests. Like the rest of the CLI, each command imports the heavy
code it needs only when it runs, after asking every native thread pool for a
single thread (the batch jobs share the machine with the live system).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

app = typer.Typer(
    help="Batch training, evaluation and offline recommendations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Kind(StrEnum):
    """Artifact kinds ``encore train`` produces."""

    als = "als"
    lightgcn = "lightgcn"
    hybrid = "hybrid"
    policy = "policy"
    content = "content"
    fingerprint = "fingerprint"
    taste = "taste"
    all = "all"


class Source(StrEnum):
    """Where ``encore train`` reads its data."""

    demo = "demo"
    events = "events"
    lastfm_2k = "lastfm-2k"
    movielens_100k = "movielens-100k"


class EvalDataset(StrEnum):
    """Public datasets ``encore eval`` measures on."""

    lastfm_2k = "lastfm-2k"
    movielens_100k = "movielens-100k"


class Protocol(StrEnum):
    """Evaluation splits."""

    random = "random"
    temporal = "temporal"


ALL_KINDS = ("als", "lightgcn", "hybrid", "policy", "content", "fingerprint", "taste")
RECBOLE_SEED = 2020
"""RecBole's default seed, the split seed of its published results."""


def _one_thread() -> None:
    from batch.threads import limit_env

    limit_env()


def _lastfm_path(path: Path | None) -> Path | None:
    if path is not None:
        return path
    env = os.environ.get("ENCORE_LASTFM_DIR")
    return Path(env) if env else None


@app.command("train")
def train(
    kind: Annotated[Kind, typer.Argument(help="What to train; `all` = every kind.")] = Kind.all,
    source: Annotated[Source, typer.Option(help="Training data.")] = Source.demo,
    path: Annotated[
        Path | None,
        typer.Option(help="lastfm-2k: the HetRec folder; events: a snapshot folder to reuse."),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(help="Retrain every N seconds (default ENCORE_BATCH_SCHEDULE_S; 0: once)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train models from a source and publish them as versioned artifacts."""
    _one_thread()
    from batch.schedule import run_every
    from batch.train import train as run_train
    from models.settings import load_settings

    settings = load_settings()
    kinds = ALL_KINDS if kind is Kind.all else (kind.value,)
    where = _lastfm_path(path) if source is Source.lastfm_2k else path

    def once() -> dict[str, str]:
        started = time.perf_counter()
        versions = run_train(kinds, source.value, where, settings, progress=progress)
        elapsed = time.perf_counter() - started
        typer.echo(orjson.dumps({"published": versions, "seconds": round(elapsed, 1)}).decode())
        return versions

    interval = settings.batch.schedule_s if every is None else every
    if interval <= 0:
        once()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_every(
            interval,
            once,
            stop=stop,
            on_error=lambda exc: typer.echo(f"training failed, keeping artifacts: {exc}", err=True),
        )
    except KeyboardInterrupt:
        stop.set()


@app.command("eval")
def evaluate(
    dataset: Annotated[EvalDataset, typer.Option(help="Which dataset.")],
    protocol: Annotated[Protocol, typer.Option(help="random 80/10/10 or temporal.")] = (
        Protocol.random
    ),
    quick: Annotated[bool, typer.Option(help="No tuning, short LightGCN (a smoke run).")] = False,
    path: Annotated[
        Path | None, typer.Option(help="lastfm-2k folder (default ENCORE_LASTFM_DIR).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Split and model seed.")] = RECBOLE_SEED,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default reports/<dataset>).")
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(
            help="Instead: score free-text queries (JSON lines of query and relevant tags; "
            "e.g. batch/data/mood_queries.jsonl) and write <out>/queries.{md,json}."
        ),
    ] = None,
) -> None:
    """Compare every model on a public dataset (full ranking) and write a report."""
    _one_thread()
    if queries is not None:
        _eval_queries(dataset, queries, _lastfm_path(path), out)
        return
    from batch import evaluate as ev
    from batch import report
    from models.ranking import RankConfig
    from models.settings import load_settings
    from models.state import fold_config

    settings = load_settings()
    folder = _lastfm_path(path) if dataset is EvalDataset.lastfm_2k else None
    if dataset is EvalDataset.lastfm_2k and folder is None:
        raise typer.BadParameter("pass --path to the hetrec2011-lastfm-2k folder")
    command = f"encore eval --dataset {dataset.value} --protocol {protocol.value}"
    command += (" --quick" if quick else "") + (f" --path {folder}" if folder else "")
    command += f" --seed {seed}" if seed != RECBOLE_SEED else ""
    started = time.perf_counter()

    def log(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - started:7.1f}s] {message}", err=True)

    result = ev.run(
        dataset.value,
        protocol.value,
        path=folder,
        seed=seed,
        quick=quick,
        settings=settings.batch,
        fold=fold_config(settings),
        rank=RankConfig(
            fold=fold_config(settings),
            mmr_lambda=settings.api.mmr_lambda,
            artist_gap=settings.api.artist_gap,
        ),
        log=log,
    )
    md = report.write(result, out or Path("reports") / dataset.value, command)
    typer.echo(str(md))


@app.command("eval-audio")
def evaluate_audio(
    seeds: Annotated[int, typer.Option(min=1, max=10, help="Encoder seeds to average.")] = 3,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Encoder training steps (default ENCORE_AUDIO_*).")
    ] = None,
    held_out: Annotated[
        bool, typer.Option(help="Also train on half the clips, measure on the other half.")
    ] = True,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("reports") / "audio",
) -> None:
    """Compare the learned audio encoder with the librosa features on the packaged clips:
    same-label precision and augmented-crop recovery; writes <out>/audio.{md,json} and
    prints the JSON and the table."""
    _one_thread()
    from batch import audio_eval
    from batch.learned_audio import config_of
    from models.settings import load_settings

    config = config_of(load_settings().audio)
    if steps is not None:
        config = replace(config, steps=steps)
    command = f"encore eval-audio --seeds {seeds}" + (f" --steps {steps}" if steps else "")
    command += "" if held_out else " --no-held-out"
    started = time.perf_counter()

    def log(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - started:7.1f}s] {message}", err=True)

    try:
        result = audio_eval.run(tuple(range(seeds)), config, held_out=held_out, log=log)
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    md = audio_eval.write(result, out, command)
    typer.echo(orjson.dumps(result["mean"], option=orjson.OPT_INDENT_2).decode())
    typer.echo(audio_eval.table(result))
    typer.echo(str(md))


@app.command("eval-taste")
def evaluate_taste(
    seed: Annotated[int, typer.Option(help="Population, split and model seed.")] = 11,
    audio_taste: Annotated[
        float,
        typer.Option(help="Logits per standard deviation of audio alignment (models.demo)."),
    ] = 1.5,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("reports") / "demo",
) -> None:
    """The taste classifier on a simulated population whose taste depends on the audio:
    held-out AUC against baselines, and served cold-track lists with and without it."""
    _one_thread()
    from batch import taste_eval, taste_report
    from batch.text import encoder
    from models.ranking import RankConfig
    from models.settings import load_settings
    from models.state import fold_config

    settings = load_settings()
    started = time.perf_counter()

    def log(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - started:7.1f}s] {message}", err=True)

    text = encoder()
    result = taste_eval.run(
        seed=seed,
        audio_taste=audio_taste,
        encode=lambda texts: text.encode(texts),
        min_events=settings.batch.taste_min_events,
        l2=settings.batch.taste_l2,
        text_dims=settings.batch.taste_text_dims,
        rank=RankConfig(
            fold=fold_config(settings),
            mmr_lambda=settings.api.mmr_lambda,
            artist_gap=settings.api.artist_gap,
            taste_k=settings.api.taste_candidates,
        ),
        log=log,
    )
    result["seconds"] = round(time.perf_counter() - started, 1)
    command = f"encore eval-taste --seed {seed} --audio-taste {audio_taste}"
    md = taste_report.write(result, out, command)
    typer.echo(orjson.dumps(result).decode())
    typer.echo(taste_report.tables(result))
    typer.echo(str(md))


class RecKind(StrEnum):
    """Published collaborative kinds ``encore recommend-batch`` reads."""

    als = "als"
    lightgcn = "lightgcn"
    hybrid = "hybrid"


def _eval_queries(dataset: EvalDataset, file: Path, folder: Path | None, out: Path | None) -> None:
    """``encore eval --queries``: P@10 and NDCG@10 of the query route vs. a text baseline."""
    from batch import queries_report
    from batch.queries import QueryFileError, read_queries

    try:
        read_queries(file)  # a bad file fails before anything is loaded
    except QueryFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if dataset is not EvalDataset.lastfm_2k:
        raise typer.BadParameter("--queries is judged by Last.fm tags: use --dataset lastfm-2k")
    if folder is None:
        raise typer.BadParameter("pass --path to the hetrec2011-lastfm-2k folder")
    started = time.perf_counter()

    def log(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - started:7.1f}s] {message}", err=True)

    result = queries_report.run(file, folder, Path("var") / "eval" / dataset.value, log)
    command = f"encore eval --queries {file} --dataset {dataset.value} --path {folder}"
    md = queries_report.write(result, out or Path("reports") / dataset.value, command)
    typer.echo(str(md))


@app.command("recommend-batch")
def recommend_batch(
    users: Annotated[Path, typer.Option(help="File of user ids, one per line.")],
    out: Annotated[Path, typer.Option(help="Output JSONL file.")],
    k: Annotated[int, typer.Option(min=1, max=1000, help="Items per user.")] = 10,
    kind: Annotated[RecKind, typer.Option(help="Published model to read.")] = RecKind.als,
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="user_id<TAB>item_id lines (or CSV) never to recommend, on top of the "
            "training items (e.g. train plus validation pairs).",
        ),
    ] = None,
) -> None:
    """Top-k recommendations for many users from the published model, as JSON lines."""
    _one_thread()
    from batch.recommend import ExcludeFileError, read_exclude, read_users, recommend
    from models.io.artifacts import ArtifactError, ArtifactStore, remote_of
    from models.settings import load_settings

    settings = load_settings()
    store = ArtifactStore(
        Path(settings.artifacts.root),
        settings.artifacts.keep_versions,
        remote_of(settings.artifacts),
    )
    try:
        pairs = read_exclude(exclude) if exclude is not None else None
    except (ExcludeFileError, OSError, UnicodeDecodeError) as exc:
        typer.echo(f"bad --exclude file: {exc}", err=True)
        sys.exit(2)
    try:
        stats = recommend(store, read_users(users), k, out, kind.value, pairs)
    except ArtifactError as exc:
        typer.echo(f"no usable {kind.value} artifact: {exc}", err=True)
        sys.exit(1)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)
    typer.echo(orjson.dumps(stats).decode())


def register(parent: typer.Typer) -> None:
    """Add the batch commands to the ``encore`` app."""
    parent.command("train")(train)
    parent.command("eval")(evaluate)
    parent.command("eval-audio")(evaluate_audio)
    parent.command("eval-taste")(evaluate_taste)
    parent.command("recommend-batch")(recommend_batch)
