"""Links the public may not send, and the local files a catalog entry may make us read."""

from __future__ import annotations

import io
import wave
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from models.io.localaudio import servable, trusted_path, trusted_roots
from models.urls import file_path, private_host, public_url_problem


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.mp3",
        "http://127.1/a.mp3",  # inet_aton shorthand for 127.0.0.1
        "http://2130706433/a.mp3",  # 127.0.0.1 as one number
        "http://0x7f.0.0.1/a.mp3",
        "http://[::1]/a.mp3",
        "http://[::ffff:127.0.0.1]/a.mp3",
        "http://[fe80::1]/a.mp3",
        "http://10.1.2.3/a.mp3",
        "http://172.16.0.9/a.mp3",
        "http://192.168.1.1:8080/a.mp3",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/a.mp3",
        "http://0.0.0.0/a.mp3",
        "http://224.0.0.1/a.mp3",
        "http://localhost:6379/",
        "http://LOCALHOST./a.mp3",
        "http://api.localhost/a.mp3",
        "http://printer.local/a.mp3",
        "http://redis/a.mp3",  # a single-label (intranet) name
        "http://example.com@127.0.0.1/a.mp3",  # userinfo, then the real host
        "http://[::1/",
    ],
)
def test_links_to_this_network_are_private(url: str) -> None:
    assert private_host(url), url
    assert public_url_problem(url, fetched=True) is not None
    assert public_url_problem(url, fetched=False) is None  # not fetched: no harm


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/a.mp3",
        "http://93.184.216.34/a.mp3",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/a.mp3",
        "http://8.8.8.8:8080/x",
    ],
)
def test_links_to_the_internet_are_public(url: str) -> None:
    assert not private_host(url)
    assert public_url_problem(url, fetched=True) is None


@pytest.mark.parametrize("url", ["file:///etc/passwd", "FILE:///x", "file://localhost/x"])
def test_the_public_may_send_no_file_link(url: str) -> None:
    for fetched in (True, False):
        assert "file://" in str(public_url_problem(url, fetched=fetched))


def test_file_urls_name_absolute_paths_only() -> None:
    assert file_path("file:///music/a%20b.ogg") == PurePosixPath("/music/a b.ogg")
    assert file_path("file://localhost/music/a.ogg") == PurePosixPath("/music/a.ogg")
    assert file_path("file://otherhost/music/a.ogg") is None
    assert file_path("file:///music/a%00.ogg") is None
    assert file_path("https://example.com/a.ogg") is None


def _wav(path: Path, seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22_050)
        tone = np.sin(np.linspace(0, 440 * 2 * np.pi * seconds, int(22_050 * seconds)))
        w.writeframes((tone * 8_000).astype("<i2").tobytes())
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_only_files_under_a_trusted_root_are_read(tmp_path: Path) -> None:
    root, outside = tmp_path / "music", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    _wav(root / "song.wav")
    _wav(outside / "key.wav")
    (root / "link.wav").symlink_to(outside / "key.wav")
    roots = trusted_roots([root])
    assert servable((root / "song.wav").as_uri(), roots) == (root / "song.wav").resolve()
    refused = [
        (outside / "key.wav").as_uri(),
        (root / "link.wav").as_uri(),  # a symlink out of the root
        f"file://{root}/../secret/key.wav",  # a way out by ..
        "file:///etc/passwd",
        (root / "missing.wav").as_uri(),
    ]
    for url in refused:
        assert servable(url, roots) is None, url
    assert trusted_path((root / "missing.wav").as_uri(), roots) is not None  # trusted, absent
    assert trusted_path((outside / "key.wav").as_uri(), trusted_roots([])) is None


def test_training_reads_no_audio_outside_the_trusted_roots(tmp_path: Path) -> None:
    pytest.importorskip("librosa", reason="audio analysis needs the ml extra")
    from batch import audio

    _wav(tmp_path / "song.wav", seconds=3.0)
    tracks = [("t1", (tmp_path / "song.wav").as_uri()), ("t2", "https://cdn.example.com/a.mp3")]
    refused = audio.analyse(tracks, fingerprints=False)
    assert (refused.untrusted, refused.refused, refused.features) == (1, 1, {})
    assert refused.errors == {"t2": "remote: no fetch settings given"}
    read = audio.analyse(tracks, fingerprints=False, roots=[tmp_path])
    assert read.untrusted == 0
    assert set(read.features) == {"t1"}
