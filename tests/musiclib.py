"""A small music folder for the scan tests: real audio files, tagged here (the tagging
is the fixture writing its own copies; the scan itself never writes)."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import wave
from pathlib import Path

import pytest


def clips() -> list[Path]:
    """Two packaged Ogg Opus clips (the ``data`` extra)."""
    from models.io.localaudio import packaged_clips

    folder = packaged_clips()
    if folder is None:
        pytest.skip("the packaged clips (data extra: immich-memories-music) are not installed")
    return sorted(folder.rglob("*.opus"))[:2]


def write_wav(path: Path, seconds: float = 0.5, rate: int = 8_000) -> None:
    """A mono 16-bit sine-ish WAV written with the standard library."""
    frames = b"".join(struct.pack("<h", (i * 37) % 2000 - 1000) for i in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def make_library(root: Path) -> Path:
    """``root/music`` with: a liked and played Opus (Vorbis comments), a disliked WAV (ID3
    POPM), an untagged Opus, a copy of the liked one, a text file, a damaged FLAC and a
    symbolic link."""
    import mutagen.id3
    import mutagen.oggopus
    import mutagen.wave

    music = root / "music"
    (music / "Artist A").mkdir(parents=True)
    (music / "misc").mkdir()
    first, second = clips()
    liked = music / "Artist A" / "liked song.opus"
    shutil.copyfile(first, liked)
    tags = mutagen.oggopus.OggOpus(liked)
    tags["title"] = "Liked Song"
    tags["artist"] = "Artist A"
    tags["album"] = "First Album"
    tags["genre"] = "Folk"
    tags["date"] = "2004-05-06"
    tags["FMPS_RATING"] = "0.8"
    tags["FMPS_PLAYCOUNT"] = "12"
    tags.save()
    shutil.copyfile(liked, music / "misc" / "copy of liked.opus")
    shutil.copyfile(second, music / "misc" / "untagged.opus")

    hated = music / "misc" / "hated.wav"
    write_wav(hated)
    w = mutagen.wave.WAVE(hated)
    w.add_tags()
    w.tags.add(mutagen.id3.TIT2(encoding=3, text=["Hated"]))
    w.tags.add(mutagen.id3.TPE1(encoding=3, text=["Artist B"]))
    w.tags.add(mutagen.id3.TCON(encoding=3, text=["(13)"]))  # ID3v1 genre 13: Pop
    w.tags.add(mutagen.id3.TDRC(encoding=3, text=["1999"]))
    w.tags.add(mutagen.id3.POPM(email="player@example.org", rating=1, count=3))
    w.save()

    (music / "notes.txt").write_text("liner notes\n")
    (music / "misc" / "damaged.flac").write_bytes(b"fLaC\x00\x00")
    outside = root / "outside.opus"
    shutil.copyfile(second, outside)
    os.symlink(outside, music / "link.opus")
    return music


def fingerprint(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under ``folder``: content hash (files), size and modification time."""
    out: dict[str, tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = ""
            if path.is_file() and not path.is_symlink() and os.access(path, os.R_OK):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(folder))] = (digest, st.st_size, st.st_mtime_ns)
    return out
