"""The artifact store: versioned model files on disk, published by an atomic pointer swap.

Layout::

    <root>/<kind>/<version>/manifest.json   version, kind, params, metrics, data range,
                                            files with sha256 and size
    <root>/<kind>/<version>/<files>         .npy / .json / FAISS index files (never pickle)
    <root>/<kind>/CURRENT                   JSON {"version": ...}, replaced atomically

Writers build a version directory completely, then :meth:`ArtifactStore.publish`
replaces ``CURRENT`` with ``os.replace`` (readers never see a half-written
version) and prunes old versions. Readers verify checksums before use and keep
their old version when a new one fails to load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
CURRENT = "CURRENT"


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete or corrupted."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_version(now: float | None = None) -> str:
    """A sortable version name: UTC time to the microsecond."""
    t = time.time() if now is None else now
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int((t % 1) * 1e6):06d}Z"


@dataclass
class Artifact:
    """A loaded, verified artifact version."""

    kind: str
    version: str
    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        """Path of one of the artifact's files."""
        if name not in self.manifest["files"]:
            raise ArtifactError(f"{self.kind}/{self.version} has no file {name}")
        return self.path / name

    def json(self, name: str) -> Any:
        """A JSON file of the artifact."""
        return json.loads(self.file(name).read_text())

    def array(self, name: str, mmap: bool = False) -> np.ndarray:
        """A .npy file of the artifact (no pickle). ``mmap``: mapped read-only, so processes
        serving the same version share its pages (for arrays that are only read)."""
        if name not in self.arrays:
            self.arrays[name] = np.load(
                self.file(name), allow_pickle=False, mmap_mode="r" if mmap else None
            )
        return self.arrays[name]


class ArtifactStore:
    """Versioned artifacts under one root directory."""

    def __init__(self, root: Path, keep: int = 3) -> None:
        self.root = Path(root)
        self.keep = keep

    def stage(self, kind: str, version: str | None = None) -> Path:
        """A fresh directory to write a new version into (not visible until published)."""
        version = version or new_version()
        path = self.root / kind / version
        if path.exists():
            raise ArtifactError(f"{kind}/{version} already exists")
        path.mkdir(parents=True)
        return path

    def publish(
        self,
        kind: str,
        path: Path,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        """Write the manifest (with checksums), then swap ``CURRENT`` to this version."""
        version = path.name
        files = {
            p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(path.iterdir())
            if p.is_file() and p.name != MANIFEST
        }
        manifest = {
            "kind": kind,
            "version": version,
            "created_at": time.time(),
            "params": dict(params or {}),
            "metrics": dict(metrics or {}),
            "data": dict(data or {}),
            "files": files,
        }
        _atomic_write(path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        _atomic_write(self.root / kind / CURRENT, json.dumps({"version": version}))
        self.prune(kind)
        return version

    def current_version(self, kind: str) -> str | None:
        """The published version of a kind, or None."""
        try:
            return str(json.loads((self.root / kind / CURRENT).read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None

    def versions(self, kind: str) -> list[str]:
        """Complete versions on disk, oldest first."""
        base = self.root / kind
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / MANIFEST).is_file())

    def load(self, kind: str, version: str | None = None) -> Artifact:
        """Load and verify a version (default: the published one)."""
        version = version or self.current_version(kind)
        if version is None:
            raise ArtifactError(f"no published {kind} artifact under {self.root}")
        path = self.root / kind / version
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{kind}/{version}: unreadable manifest: {exc}") from exc
        for name, meta in manifest["files"].items():
            f = path / name
            if not f.is_file():
                raise ArtifactError(f"{kind}/{version}: missing file {name}")
            if f.stat().st_size != meta["bytes"] or sha256_file(f) != meta["sha256"]:
                raise ArtifactError(f"{kind}/{version}: checksum mismatch in {name}")
        return Artifact(kind, version, path, manifest)

    def prune(self, kind: str) -> list[str]:
        """Delete all but the newest ``keep`` versions (never the published one)."""
        current = self.current_version(kind)
        doomed = [v for v in self.versions(kind)[: -self.keep] if v != current]
        for v in doomed:
            shutil.rmtree(self.root / kind / v, ignore_errors=True)
        return doomed


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def without_paths(text: str, root: Path) -> str:
    """An error text with the store's location replaced by ``<artifacts>`` (status routes
    show it; the log keeps the whole text)."""
    for form in sorted({str(root.resolve()), str(root)}, key=len, reverse=True):
        if form and form != ".":
            text = text.replace(form, "<artifacts>")
    return text


def save_array(path: Path, name: str, array: np.ndarray) -> None:
    """Write one array as ``<name>.npy`` (no pickle)."""
    np.save(path / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)


def save_json(path: Path, name: str, obj: Any) -> None:
    """Write one JSON file."""
    (path / name).write_text(json.dumps(obj, sort_keys=True))
