"""The labelled mood query file, its reader, the metrics and ``encore eval --queries`` errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.queries import (
    QueryFileError,
    lastfm_tag_names,
    precision_ndcg,
    read_queries,
    relevant,
    simple_tokens,
)
from encore.train_cli import app

QUERIES = Path(__file__).parents[2] / "batch" / "data" / "mood_queries.jsonl"


def test_the_shipped_set_has_enough_paraphrased_queries() -> None:
    queries = read_queries(QUERIES)
    assert len(queries) >= 60
    assert len({q.query.lower() for q in queries}) == len(queries)
    for q in queries:
        shared = {w for t in q.tags for w in simple_tokens(t) & simple_tokens(q.query)}
        assert not shared, f"line {q.line}: {q.query!r} shares {shared} with its tags"


def test_every_listed_tag_is_a_lastfm_tag(lastfm_dir: Path) -> None:
    vocab = set(lastfm_tag_names(lastfm_dir).values())
    missing = {(q.line, t) for q in read_queries(QUERIES) for t in q.tags if t not in vocab}
    assert not missing


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"query": "a", "tags": ["sad"]}\n\n{"query": "b", "tags": ["sad"]\n', ":3: not JSON"),
        ('{"query": "a", "tags": ["sad"]}\n["a", "b"]\n', ":2: expected an object"),
        ('{"query": "", "tags": ["sad"]}\n', ":1: query must be a non-empty string"),
        ('{"query": "?!", "tags": ["sad"]}\n', ":1: query has no words"),
        ('{"query": "a", "tags": []}\n', ":1: tags must be a non-empty list"),
        ('{"query": "a", "tags": "sad"}\n', ":1: tags must be a non-empty list"),
        ('{"query": "a", "tags": ["sad", 3]}\n', ":1: tags must be a non-empty list"),
        ('# note\n{"query": "a", "tags": ["x"], "mood": 1}\n', ":2: unknown field(s) mood"),
        ("# only a comment\n", "no queries"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(QueryFileError) as err:
        read_queries(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match="no such query file"):
        read_queries(tmp_path / "nope.jsonl")


def test_cli_reports_the_bad_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "calm evening", "tags": ["chillout"]}\n{"query": 5}\n')
    result = CliRunner().invoke(app, ["eval", "--queries", str(path), "--dataset", "lastfm-2k"])
    assert result.exit_code == 2
    assert f"{path}:2: query must be a non-empty string" in result.output
    missing = CliRunner().invoke(
        app, ["eval", "--queries", str(tmp_path / "x.jsonl"), "--dataset", "lastfm-2k"]
    )
    assert missing.exit_code == 2
    assert "no such query file" in missing.output


def test_cli_queries_need_lastfm(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "calm evening", "tags": ["chillout"]}\n')
    result = CliRunner().invoke(
        app, ["eval", "--queries", str(path), "--dataset", "movielens-100k"]
    )
    assert result.exit_code != 0
    assert "lastfm-2k" in result.output


def test_relevance_counts_distinct_taggers_over_the_query_tags() -> None:
    by_tag = {
        "sad": {"lfm:1": {"u1"}, "lfm:2": {"u1", "u2"}, "lfm:3": {"u1"}},
        "melancholic": {"lfm:1": {"u2"}, "lfm:3": {"u1"}},
    }
    assert relevant(("sad", "melancholic"), by_tag, 2) == {"lfm:1", "lfm:2"}
    assert relevant(("sad",), by_tag, 1) == {"lfm:1", "lfm:2", "lfm:3"}
    assert relevant(("unknown",), by_tag, 1) == set()


def test_precision_and_ndcg() -> None:
    assert precision_ndcg(["a", "b"], {"a", "b"}, k=2) == (1.0, 1.0)
    p, n = precision_ndcg(["x", "a"], {"a"}, k=2)
    assert p == 0.5
    assert 0 < n < 1
    assert precision_ndcg(["x"], set(), k=1) == (0.0, 0.0)
