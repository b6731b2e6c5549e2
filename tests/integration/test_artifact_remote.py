"""Artifacts shared between hosts through S3-compatible storage (moto's server): each host
has its own root; a version published on one is copied whole and verified by the others
before they load it, an unfinished upload or a corrupted file is never served, and old
versions are pruned in the bucket too."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from api.bundle import BundleWatcher
from models.io.artifacts import (
    Artifact,
    ArtifactError,
    ArtifactStore,
    remote_of,
    save_array,
    save_json,
)
from models.io.s3 import S3Remote
from models.io.watcher import ArtifactWatcher
from models.serving import Bundle
from models.settings import ArtifactSettings

KIND = "thing"
BUCKETS = itertools.count()


@pytest.fixture
def remote(s3_endpoint: str) -> S3Remote:
    """A remote on a fresh bucket, built from settings as the entrypoints build it."""
    bucket = f"artifacts-{next(BUCKETS)}"
    settings = ArtifactSettings(s3_url=f"s3://{bucket}/team/prod", s3_endpoint=s3_endpoint)
    made = remote_of(settings)
    assert made is not None
    made.client.create_bucket(Bucket=bucket)
    return made


def publish(store: ArtifactStore, payload: int, version: str | None = None) -> str:
    path = store.stage(KIND, version)
    save_json(path, "payload.json", {"payload": payload})
    save_array(path, "vector", np.arange(payload + 3, dtype=np.float32))
    return store.publish(KIND, path, params={"payload": payload})


def files(root: Path, version: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / KIND / version).iterdir())}


def reader(store: ArtifactStore) -> tuple[ArtifactWatcher, dict[str, Any]]:
    """A watcher serving the payload of the newest loadable version of KIND."""
    served: dict[str, Any] = {}

    def load(art: Artifact) -> int:
        assert art.array("vector.npy", mmap=True).shape == (
            art.json("payload.json")["payload"] + 3,
        )
        return int(art.json("payload.json")["payload"])

    watcher = ArtifactWatcher(
        store,
        {KIND: load},
        lambda kind: served.get("version"),
        lambda kind, version, obj: served.update(version=version, payload=obj),
    )
    return watcher, served


def test_settings_name_a_bucket_or_nothing() -> None:
    assert remote_of(ArtifactSettings()) is None
    with pytest.raises(ValueError, match="s3_url"):
        ArtifactSettings(s3_url="https://bucket/prefix")


def test_a_version_published_on_one_host_is_read_whole_on_another(
    tmp_path: Path, remote: S3Remote
) -> None:
    a = ArtifactStore(tmp_path / "a", remote=remote)
    b = ArtifactStore(tmp_path / "b", remote=remote)
    version = publish(a, 5)
    assert b.current_version(KIND) == version
    art = b.load(KIND)
    assert art.version == version
    assert art.manifest == a.load(KIND).manifest
    assert files(tmp_path / "b", version) == files(tmp_path / "a", version)
    assert ArtifactStore(tmp_path / "b").current_version(KIND) == version  # followed locally
    assert [p.name for p in (tmp_path / "b" / KIND).iterdir() if p.name.startswith(".")] == []
    assert b.load(KIND).path == art.path  # already there: not copied again


def test_an_unfinished_upload_is_never_seen(tmp_path: Path, remote: S3Remote) -> None:
    a = ArtifactStore(tmp_path / "a", remote=remote)
    old = publish(a, 1)
    path = a.stage(KIND)  # a publisher that stops after its files and manifest, before CURRENT
    save_json(path, "payload.json", {"payload": 2})
    ArtifactStore(tmp_path / "a").publish(KIND, path)  # the manifest, on A's disk only
    for name in ("payload.json", "manifest.json"):
        remote.client.upload_file(
            str(path / name), remote.bucket, remote.key(KIND, path.name, name)
        )
    assert remote.versions(KIND) == [old, path.name]
    b = ArtifactStore(tmp_path / "b", remote=remote)
    assert b.current_version(KIND) == old
    assert b.load(KIND).version == old
    assert b.versions(KIND) == [old]


async def test_a_corrupted_file_is_refused_and_the_old_version_kept(
    tmp_path: Path, remote: S3Remote
) -> None:
    a = ArtifactStore(tmp_path / "a", remote=remote)
    b = ArtifactStore(tmp_path / "b", remote=remote)
    watcher, served = reader(b)
    good = publish(a, 1)
    assert await watcher.check() == [KIND]
    bad = publish(a, 2)
    remote.client.put_object(
        Bucket=remote.bucket, Key=remote.key(KIND, bad, "payload.json"), Body=b'{"payload": 9}'
    )
    with pytest.raises(ArtifactError, match=r"checksum mismatch in payload\.json"):
        b.load(KIND, bad)
    assert await watcher.check() == []
    assert served == {"version": good, "payload": 1}
    assert watcher.failures[KIND].version == bad
    assert "checksum mismatch" in watcher.failures[KIND].text
    assert sorted(p.name for p in (tmp_path / "b" / KIND).iterdir()) == [good, "CURRENT"]


def test_prune_keeps_the_newest_versions_in_the_bucket_and_never_the_current(
    tmp_path: Path, remote: S3Remote
) -> None:
    a = ArtifactStore(tmp_path / "a", keep=2, remote=remote)
    versions = [publish(a, i) for i in range(4)]
    assert remote.versions(KIND) == versions[-2:]
    older = publish(a, 9, version="00000000T000000000000Z")  # current, yet oldest by name
    assert remote.versions(KIND) == [older, *versions[-2:]]
    assert remote.current_version(KIND) == older
    listed = remote.client.list_objects_v2(Bucket=remote.bucket, Prefix=remote.key(KIND))
    assert not [o for o in listed["Contents"] if versions[0] in o["Key"]]


async def test_two_readers_converge_on_the_published_version(
    tmp_path: Path, remote: S3Remote
) -> None:
    a = ArtifactStore(tmp_path / "a", remote=remote)
    readers = [reader(ArtifactStore(tmp_path / host, remote=remote)) for host in ("b", "c")]
    for payload in (1, 2):
        version = publish(a, payload)
        for watcher, _ in readers:
            assert await watcher.check() == [KIND]
        assert [served for _, served in readers] == [{"version": version, "payload": payload}] * 2
        for host in ("b", "c"):
            assert files(tmp_path / host, version) == files(tmp_path / "a", version)


def publish_als(store: ArtifactStore, scale: float) -> str:
    rng = np.random.default_rng(0)
    path = store.stage("als")
    save_json(path, "item_ids.json", [f"t{i}" for i in range(20)])
    save_array(path, "item_factors", (rng.normal(size=(20, 8)) * scale).astype(np.float32))
    save_json(path, "user_ids.json", [f"u{i}" for i in range(5)])
    save_array(path, "user_factors", rng.normal(size=(5, 8)).astype(np.float32))
    save_array(path, "popularity", (1.0 / np.arange(1, 21)).astype(np.float32))
    return store.publish("als", path, params={"scale": scale})


async def test_the_api_on_another_host_hot_swaps_to_a_published_version(
    tmp_path: Path, remote: S3Remote
) -> None:
    a = ArtifactStore(tmp_path / "a", remote=remote)
    holder = SimpleNamespace(bundle=Bundle())
    watcher = BundleWatcher(holder, tmp_path / "b", remote=remote)
    first = publish_als(a, 1.0)
    assert await watcher.check() == ["als"]
    assert holder.bundle.versions()["als"] == first
    second = publish_als(a, 2.0)
    assert await watcher.check() == ["als"]
    assert holder.bundle.versions()["als"] == second
    assert holder.bundle.failures == {}
    assert await watcher.check() == []


def test_names_from_the_bucket_never_leave_the_root(tmp_path: Path, remote: S3Remote) -> None:
    a = ArtifactStore(tmp_path / "a", remote=remote)
    good = publish(a, 1)
    b = ArtifactStore(tmp_path / "host" / "b", remote=remote)
    assert b.load(KIND).version == good
    remote.client.put_object(
        Bucket=remote.bucket, Key=remote.key(KIND, "CURRENT"), Body=b'{"version": "../../x"}'
    )
    assert b.current_version(KIND) == good  # refused: the one this host copied last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "host"]
