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

With a remote (:class:`models.io.s3.S3Remote`, several hosts sharing versions),
publishing also uploads the version and replaces the remote ``CURRENT`` last;
readers follow the remote ``CURRENT`` and copy a version they lack into their own
root before loading it from disk as above.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.io.s3 import S3Remote
    from models.settings import ArtifactSettings

log = logging.getLogger(__name__)

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


def remote_of(settings: ArtifactSettings) -> S3Remote | None:
    """The S3 mirror the settings name, or None (boto3 is imported only when one is set)."""
    if settings.s3_url is None:
        return None
    from models.io.s3 import S3Remote

    return S3Remote(settings.s3_url, settings.s3_endpoint)


class ArtifactStore:
    """Versioned artifacts under one root directory, mirrored to ``remote`` if given."""

    def __init__(self, root: Path, keep: int = 3, remote: S3Remote | None = None) -> None:
        self.root = Path(root)
        self.keep = keep
        self.remote = remote

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
        """Write the manifest (with checksums), upload the version when there is a remote,
        then swap ``CURRENT`` (remote first) to this version."""
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
        if self.remote is not None:
            self.remote.publish(kind, path)
        _atomic_write(self.root / kind / CURRENT, json.dumps({"version": version}))
        self.prune(kind)
        if self.remote is not None:
            try:
                self.remote.prune(kind, self.keep)
            except ArtifactError as exc:  # published all the same; the next publish prunes
                log.warning("%s", exc)
        return version

    def current_version(self, kind: str) -> str | None:
        """The published version of a kind, or None. With a remote, the version its
        ``CURRENT`` names; the local one while the remote cannot be read."""
        if self.remote is not None:
            try:
                return self.remote.current_version(kind)
            except ArtifactError as exc:
                log.warning("remote %s pointer unreadable, using the local one: %s", kind, exc)
        try:
            return str(json.loads((self.root / kind / CURRENT).read_text())["version"])
        except (OSError, ValueError, KeyError):
            return None

    def versions(self, kind: str) -> list[str]:
        """Complete versions on disk, oldest first (not the hidden copies under way)."""
        base = self.root / kind
        if not base.is_dir():
            return []
        return sorted(
            p.name
            for p in base.iterdir()
            if not p.name.startswith(".") and (p / MANIFEST).is_file()
        )

    def load(self, kind: str, version: str | None = None) -> Artifact:
        """Load and verify a version (default: the published one), copied from the
        remote first when there is one and the version is not on disk yet."""
        version = version or self.current_version(kind)
        if version is None:
            raise ArtifactError(f"no published {kind} artifact under {self.root}")
        path = self.root / kind / version
        if self.remote is not None and not (path / MANIFEST).is_file():
            self._fetch(self.remote, kind, version)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{kind}/{version}: unreadable manifest: {exc}") from exc
        _verify(kind, version, path, manifest)
        return Artifact(kind, version, path, manifest)

    def _fetch(self, remote: S3Remote, kind: str, version: str) -> None:
        """Copy a remote version into a hidden directory, verify it, then give it the
        version's name (one rename), so a half or corrupted copy is never loaded; then
        point the local ``CURRENT`` at it (served from disk while the remote is down)
        and prune."""
        base = self.root / kind
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{version}."))
        try:
            _verify(kind, version, tmp, remote.download(kind, version, tmp))
            os.rename(tmp, base / version)
        except OSError:
            if not (base / version / MANIFEST).is_file():  # not a copy that won the race
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _atomic_write(base / CURRENT, json.dumps({"version": version}))
        self.prune(kind)

    def prune(self, kind: str) -> list[str]:
        """Delete all but the newest ``keep`` versions (never the published one)."""
        current = self.current_version(kind)
        doomed = [v for v in self.versions(kind)[: -self.keep] if v != current]
        for v in doomed:
            shutil.rmtree(self.root / kind / v, ignore_errors=True)
        return doomed


def _verify(kind: str, version: str, path: Path, manifest: dict[str, Any]) -> None:
    """Raise unless every file the manifest lists is there with its size and sha256."""
    for name, meta in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise ArtifactError(f"{kind}/{version}: missing file {name}")
        if f.stat().st_size != meta["bytes"] or sha256_file(f) != meta["sha256"]:
            raise ArtifactError(f"{kind}/{version}: checksum mismatch in {name}")


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
