"""Which local audio files may be read: only those under trusted roots.

A ``file://`` link in the catalog names a file on the machine that reads it (batch
training decodes it, ``GET /v1/tracks/{id}/audio`` serves it). A catalog entry is
data, not an operator, so the file is read only when its real path (symlinks
resolved) lies under a trusted root: the directories an operator configured
(``ENCORE_AUDIO_LOCAL_ROOTS``) and the packaged demo clips (the ``data`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from models.urls import file_path

AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aiff": "audio/aiff",
    ".aif": "audio/aiff",
}
"""Media types of the audio files served, by suffix; other files are never served."""


def packaged_clips() -> Path | None:
    """The folder of the packaged demo clips (``data`` extra), if installed."""
    try:
        import immich_memories_music
    except ImportError:
        return None
    return Path(immich_memories_music.tracks_dir())


def trusted_roots(configured: Iterable[Path]) -> list[Path]:
    """The configured roots and the packaged clips' folder, as real absolute paths."""
    roots = [Path(os.path.realpath(r)) for r in configured]
    clips = packaged_clips()
    if clips is not None:
        roots.append(Path(os.path.realpath(clips)))
    return roots


def trusted_path(url: str, roots: Sequence[Path]) -> Path | None:
    """The real path a ``file://`` URL names when it lies under one of ``roots``
    (from :func:`trusted_roots`), else None (whether or not the file exists)."""
    path = file_path(url)
    if path is None:
        return None
    real = Path(os.path.realpath(path))
    return real if any(real.is_relative_to(root) for root in roots) else None


def servable(url: str, roots: Sequence[Path]) -> Path | None:
    """A trusted, existing audio file (by suffix) behind a ``file://`` URL, else None."""
    real = trusted_path(url, roots)
    if real is None or real.suffix.lower() not in AUDIO_TYPES or not real.is_file():
        return None
    return real
