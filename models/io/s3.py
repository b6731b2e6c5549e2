"""The artifact store's mirror in S3-compatible object storage, shared by several hosts.

Layout under ``s3://<bucket>/<prefix>``, the same as on disk::

    <kind>/<version>/<files>        uploaded first
    <kind>/<version>/manifest.json  uploaded once every file is there
    <kind>/CURRENT                  JSON {"version": ...}, replaced last

A PUT replaces one object atomically, so a reader that follows ``CURRENT`` only ever
finds a complete version. Readers copy a version to their local store before loading
it (FAISS indices and memory-mapped arrays need local files); see
:meth:`models.io.artifacts.ArtifactStore.load`. Credentials come from boto3's usual
chain (``AWS_ACCESS_KEY_ID``..., a profile, an instance role) and never from settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from models.io.artifacts import CURRENT, MANIFEST, ArtifactError

ERRORS = (BotoCoreError, ClientError)
"""What the client raises when the bucket is unreachable or refuses a request."""


class S3Remote:
    """Artifact versions in one bucket under one prefix (``s3://bucket/prefix``)."""

    def __init__(self, url: str, endpoint: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3}),
        )

    def key(self, kind: str, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, kind, *parts) if p)

    def publish(self, kind: str, path: Path) -> None:
        """Upload a complete version directory: its files, its manifest, then ``CURRENT``."""
        version = path.name
        names = sorted(p.name for p in path.iterdir() if p.is_file() and p.name != MANIFEST)
        try:
            for name in [*names, MANIFEST]:
                self.client.upload_file(
                    str(path / name), self.bucket, self.key(kind, version, name)
                )
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(kind, CURRENT),
                Body=json.dumps({"version": version}).encode(),
            )
        except ERRORS as exc:
            raise ArtifactError(f"{kind}/{version}: upload failed: {exc}") from exc

    def current_version(self, kind: str) -> str | None:
        """The version ``CURRENT`` names, or None when nothing was published."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(kind, CURRENT))["Body"]
            return _plain(kind, str(json.loads(body.read())["version"]))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise ArtifactError(f"{kind}/{CURRENT}: {exc}") from exc
        except (BotoCoreError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{kind}/{CURRENT}: {exc}") from exc

    def download(self, kind: str, version: str, dest: Path) -> dict[str, Any]:
        """Copy a version's files, then its manifest, into ``dest``; the manifest. The
        caller verifies the checksums before the directory takes the version's name."""
        try:
            body = self.client.get_object(
                Bucket=self.bucket, Key=self.key(kind, version, MANIFEST)
            )["Body"].read()
            manifest: dict[str, Any] = json.loads(body)
            for name in manifest["files"]:
                if _plain(kind, name) == MANIFEST:
                    raise ArtifactError(f"{kind}/{version}: the manifest lists itself")
                self.client.download_file(
                    self.bucket, self.key(kind, version, name), str(dest / name)
                )
        except (*ERRORS, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{kind}/{version}: download failed: {exc}") from exc
        (dest / MANIFEST).write_bytes(body)
        return manifest

    def versions(self, kind: str) -> list[str]:
        """Every version with at least one object (complete or not), oldest first."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key(kind) + "/", Delimiter="/"
        )
        return sorted(
            p["Prefix"].rstrip("/").rsplit("/", 1)[-1]
            for page in pages
            for p in page.get("CommonPrefixes", [])
        )

    def prune(self, kind: str, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` versions, never the one ``CURRENT`` names.
        A version's manifest goes first, so a reader never copies a half-deleted one."""
        try:
            current = self.current_version(kind)
            doomed = [v for v in self.versions(kind)[:-keep] if v != current]
            for version in doomed:
                self.client.delete_object(Bucket=self.bucket, Key=self.key(kind, version, MANIFEST))
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=self.key(kind, version) + "/"
                )
                for page in pages:
                    keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                    if keys:
                        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
        except ERRORS as exc:
            raise ArtifactError(f"{kind}: pruning the remote failed: {exc}") from exc
        return doomed


def _plain(kind: str, name: str) -> str:
    """``name`` if it can only name an entry of one directory (it comes from the bucket)."""
    if name != Path(name).name or name.startswith(".") or not name:
        raise ArtifactError(f"{kind}: refusing the name {name!r} from the bucket")
    return name
