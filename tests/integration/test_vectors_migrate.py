"""``encore vectors migrate`` and ``sync`` end to end on a small published content
artifact, with Milvus Lite embedded on a file under the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from batch.publish import write_index
from bench.common import publish_random_space
from encore.cli import app
from models.io.artifacts import ArtifactStore, save_array, save_json
from models.io.vectors import milvus_client, open_store
from models.settings import load_settings
from models.vectors import collection_name

GENRES = ["jazz", "rock", "folk"]


def publish(root: Path, n: int = 1_500, seed: int = 0) -> str:
    """A "content" artifact in the published layout: text vectors with their index file,
    audio vectors without one, items with genre, artist and year."""
    rng = np.random.default_rng(seed)
    store = ArtifactStore(root)
    path = store.stage("content")
    items = [
        {
            "title": f"T{i}",
            "artist": f"A{i % 50}",
            "artist_id": f"a{i % 50}",
            "genre": GENRES[i % 3],
            "year": 1970 + i % 40,
        }
        for i in range(n)
    ]
    text = rng.normal(size=(n, 32)).astype(np.float32)
    save_json(path, "item_ids.json", [f"t{i}" for i in range(n)])
    save_json(path, "items.json", items)
    save_array(path, "text", text)
    write_index(path, "text.faiss", text)
    save_array(path, "audio", rng.normal(size=(n, 16)).astype(np.float32))
    save_array(path, "mood", rng.uniform(-1, 1, size=(n, 2)).astype(np.float32))
    return store.publish("content", path)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENCORE_ARTIFACTS_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ENCORE_RUN_DIR", str(tmp_path / "run"))
    return tmp_path


def report_of(output: str) -> Any:
    """The JSON report a command printed (before its table; log lines may precede it)."""
    start = output.index("{")
    return orjson.loads(output[start : output.index("\n}", start) + 2])


def test_migrate_then_sync_agrees_and_catches_a_missing_row(env: Path) -> None:
    version = publish(env / "artifacts")
    als = publish_random_space(env / "artifacts", 800, users=40)  # the collab space
    result = CliRunner().invoke(app, ["vectors", "migrate", "--to", "milvus"])
    assert result.exit_code == 0, result.output
    assert '"rows": 1500' in result.output
    assert '"rows": 800' in result.output
    assert "| space | version | to | rows | s |" in result.output

    result = CliRunner().invoke(app, ["vectors", "sync"])
    assert result.exit_code == 0, result.output
    report = report_of(result.output)
    assert report["versions"] == {"content": version, "als": als}
    assert report["ok"]
    checks = {(c["space"], c["backend"]): c for c in report["checks"]}
    spaces = ("text", "audio", "collab")
    assert set(checks) == {(s, b) for s in spaces for b in ("faiss", "milvus")}
    for (space, _backend), c in checks.items():
        assert c["count"] == (800 if space == "collab" else 1500)
        assert c["checksum_ok"]
        assert c["recall_at_10"] >= 0.95

    settings = load_settings()
    art = ArtifactStore(settings.artifacts.root).load("content")
    store = open_store(settings, "milvus", art, "audio", milvus_client(settings))
    store.delete(["t7"])
    result = CliRunner().invoke(app, ["vectors", "sync", "--space", "audio"])
    assert result.exit_code == 1
    report = report_of(result.output)
    bad = [c for c in report["checks"] if not c["ok"]]
    assert [(c["backend"], c["count"], c["checksum_ok"]) for c in bad] == [("milvus", 1499, False)]


def test_migrate_to_faiss_writes_a_store_sync_reads(env: Path) -> None:
    version = publish(env / "artifacts", n=400, seed=1)
    result = CliRunner().invoke(app, ["vectors", "sync", "--space", "text"])
    assert result.exit_code == 1  # nothing in Milvus yet, and sync creates nothing there
    missing = [c for c in report_of(result.output)["checks"] if not c["ok"]]
    assert [(c["backend"], c["count"]) for c in missing] == [("milvus", 0)]
    assert not milvus_client(load_settings()).has_collection(collection_name("text", version))
    result = CliRunner().invoke(app, ["vectors", "migrate", "--to", "faiss", "--space", "text"])
    assert result.exit_code == 0, result.output
    saved = env / "run" / "vectors" / "faiss" / collection_name("text", version)
    assert (saved / "index.faiss").is_file()
    CliRunner().invoke(app, ["vectors", "migrate", "--to", "milvus", "--space", "text"])
    result = CliRunner().invoke(app, ["vectors", "sync", "--space", "text"])
    assert result.exit_code == 0, result.output
