"""`encore scan` against the real broker: a music folder's tracks and the listener's
embedded ratings and play counts come back from the topics; a rescan sends nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from encore.services import Proc, create_topics
from models.codec import decode_record
from models.topics import INTERACTIONS, TRACKS, all_topics
from tests.musiclib import fingerprint, make_library

ROOT = Path(__file__).resolve().parents[2]
USER = "scan-listener"


def _scan(music: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "encore.cli", "scan", str(music), "--user", USER, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "scan: 100%" in proc.stderr  # the progress bar
    return dict(json.loads(proc.stdout))


async def _events(bootstrap: str, music: Path, want: int) -> list[Any]:
    """This folder's events on the topics (other tests share the broker)."""
    consumer = AIOKafkaConsumer(
        TRACKS,
        INTERACTIONS,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    mine: list[Any] = []
    prefix = music.as_uri()
    try:
        async with asyncio.timeout(30):
            while len(mine) < want:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        for e in decode_record(r.value, max_bytes=2**22).events:
                            url = getattr(e, "audio_url", None) or ""
                            if url.startswith(prefix) or getattr(e, "user_id", None) == USER:
                                mine.append(e)
    finally:
        await consumer.stop()
    return mine


async def test_scan_sends_the_folder_to_the_topics_once(broker: Proc, tmp_path: Path) -> None:
    await create_topics(broker.address, all_topics(), 6)
    music = make_library(tmp_path)
    before = fingerprint(music)
    env = {
        **os.environ,
        "ENCORE_KAFKA_BOOTSTRAP": broker.address,
        "ENCORE_RUN_DIR": str(tmp_path / "run"),
        "ENCORE_AUDIO_LOCAL_ROOTS": str(music),
    }
    summary = _scan(music, env)
    assert summary["sent"]
    assert summary["under_audio_roots"]
    assert summary["events"] == {"tracks": 3, "likes": 1, "dislikes": 1, "plays": 2}

    events = await _events(broker.address, music, 7)
    tracks = {e.title: e for e in events if e.type == "track"}
    assert set(tracks) == {"Liked Song", "Hated", "untagged"}
    liked = tracks["Liked Song"].track_id
    got = sorted(
        (e.type, e.track_id, getattr(e, "count", None)) for e in events if e.type != "track"
    )
    hated = tracks["Hated"].track_id
    assert got == sorted(
        [("like", liked, None), ("play", liked, 12), ("dislike", hated, None), ("play", hated, 3)]
    )

    again = _scan(music, env)
    assert not again["sent"]
    assert again["unchanged"] == 3
    assert again["events"] == {"tracks": 0, "likes": 0, "dislikes": 0, "plays": 0}
    assert fingerprint(music) == before
