"""`encore scan`'s core: tags and ratings become the right events, rescans send only what
changed, copies are reported once, and the music folder is never written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch.audiotags import rating_scale, read_tags
from batch.library import (
    library_events,
    load_state,
    save_state,
    scan_library,
    state_path,
)
from tests.musiclib import fingerprint, make_library

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MAX = 2**30


@pytest.fixture
def music(tmp_path: Path) -> Path:
    return make_library(tmp_path)


def _events(music: Path, previous: dict | None = None):  # type: ignore[no-untyped-def]
    result = scan_library(music, previous or {}, max_bytes=MAX)
    tracks, interactions = library_events(
        music, result.send, result.known_tracks, "listener-1", NOW
    )
    return result, tracks, interactions


def test_tags_are_read_from_vorbis_comments_and_id3(music: Path) -> None:
    with open(music / "Artist A" / "liked song.opus", "rb") as f:
        liked = read_tags(f)
    assert (liked.title, liked.artist, liked.album, liked.genre, liked.year) == (
        "Liked Song",
        "Artist A",
        "First Album",
        "Folk",
        2004,
    )
    assert liked.rating == pytest.approx(0.8)
    assert liked.play_count == 12
    assert liked.duration_ms is not None
    assert liked.duration_ms > 1_000
    with open(music / "misc" / "hated.wav", "rb") as f:
        hated = read_tags(f)
    assert (hated.title, hated.artist, hated.genre, hated.year) == (
        "Hated",
        "Artist B",
        "Pop",
        1999,
    )
    assert hated.rating == pytest.approx(1 / 255)
    assert hated.play_count == 3
    assert hated.duration_ms == 500


@pytest.mark.parametrize(
    ("text", "key", "want"),
    [
        ("0.8", "fmps_rating", 0.8),
        ("1", "fmps_rating", 1.0),
        ("1", "rating", 0.2),  # one star of five, not FMPS 1.0
        ("0.4", "rating", 0.4),
        ("4", "rating", 0.8),
        ("80", "rate", 0.8),
        ("99", "WM/SharedUserRating", 1.0),
        ("0", "rating", None),
        ("five", "rating", None),
        ("", "rating", None),
    ],
)
def test_ratings_on_their_own_scales(text: str, key: str, want: float | None) -> None:
    got = rating_scale(text, key)
    assert got == (pytest.approx(want) if want is not None else None)


def test_tracks_ratings_and_play_counts_become_events(music: Path) -> None:
    _result, tracks, interactions = _events(music)
    by_title = {t.title: t for t in tracks}
    assert set(by_title) == {"Liked Song", "Hated", "untagged"}  # untagged: the file name
    liked = by_title["Liked Song"]
    assert liked.audio_url == (music / "Artist A" / "liked song.opus").as_uri()
    assert "%20" in liked.audio_url
    assert liked.track_id.startswith("local-")
    assert len(liked.track_id) == 22
    assert (liked.artist, liked.album, liked.genre, liked.year) == (
        "Artist A",
        "First Album",
        "Folk",
        2004,
    )
    kinds = sorted((e.type, e.track_id) for e in interactions)
    hated = by_title["Hated"].track_id
    assert kinds == sorted(
        [("like", liked.track_id), ("play", liked.track_id), ("dislike", hated), ("play", hated)]
    )
    plays = {e.track_id: e for e in interactions if e.type == "play"}
    assert plays[liked.track_id].count == 12
    assert plays[liked.track_id].completion == 1.0
    assert plays[hated].count == 3
    assert all(e.user_id == "listener-1" and e.occurred_at == NOW for e in interactions)
    # deterministic ids: the same scan again builds the same events
    _, tracks2, interactions2 = _events(music)
    assert [e.event_id for e in tracks + interactions] == [
        e.event_id for e in tracks2 + interactions2
    ]
    assert len({e.event_id for e in tracks + interactions}) == len(tracks) + len(interactions)


def test_duplicates_and_skips_are_reported_once_with_a_reason(music: Path) -> None:
    result, tracks, _ = _events(music)
    assert result.duplicates == [("Artist A/liked song.opus", "misc/copy of liked.opus")]
    assert len(tracks) == 3
    assert result.skipped == {
        "not_audio": ["notes.txt"],
        "unreadable": ["misc/damaged.flac"],
        "symlink": ["link.opus"],
    }
    assert len(result.files) == 4
    assert len(result.new) == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_skipped_as_unreadable(music: Path) -> None:
    locked = music / "misc" / "untagged.opus"
    locked.chmod(0)
    try:
        result, _, _ = _events(music)
    finally:
        locked.chmod(0o644)
    assert "misc/untagged.opus" in result.skipped["unreadable"]


def test_a_fifo_is_skipped_without_being_opened(music: Path) -> None:
    os.mkfifo(music / "pipe.mp3")
    result, _, _ = _events(music)  # opening a FIFO would block: it returns
    assert result.skipped["special"] == ["pipe.mp3"]


def test_too_large_files_are_skipped(music: Path) -> None:
    result = scan_library(music, {}, max_bytes=100)
    assert "Artist A/liked song.opus" in result.skipped["too_large"]


def test_rescan_sends_only_new_or_changed_files(music: Path, tmp_path: Path) -> None:
    import mutagen.oggopus

    state = state_path(tmp_path / "run", music)
    assert not state.is_relative_to(music)
    first, _, _ = _events(music)
    save_state(state, music, first.files)

    again, tracks, interactions = _events(music, load_state(state))
    assert (tracks, interactions) == ([], [])
    assert len(again.unchanged) == 3
    assert again.duplicates == first.duplicates

    untagged = music / "misc" / "untagged.opus"
    st = untagged.stat()
    os.utime(untagged, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes
    touched, tracks, _ = _events(music, load_state(state))
    assert tracks == []
    assert len(touched.unchanged) == 3

    tags = mutagen.oggopus.OggOpus(untagged)  # a new tag: new bytes, a new track
    tags["title"] = "Now Tagged"
    tags["FMPS_RATING"] = "1.0"
    tags.save()
    changed, tracks, interactions = _events(music, load_state(state))
    assert changed.changed == ["misc/untagged.opus"]
    assert [t.title for t in tracks] == ["Now Tagged"]
    assert [e.type for e in interactions] == ["like"]
    save_state(state, music, changed.files)

    (music / "misc" / "hated.wav").rename(music / "hated moved.wav")
    moved, tracks, interactions = _events(music, load_state(state))
    assert moved.removed == ["misc/hated.wav"]
    assert moved.new == ["hated moved.wav"]
    assert [t.audio_url for t in tracks] == [(music / "hated moved.wav").as_uri()]
    assert interactions == []  # the same track: its plays were sent already


def test_the_state_never_lives_inside_the_music_folder(music: Path) -> None:
    with pytest.raises(ValueError, match="inside"):
        state_path(music / "var" / "run", music)


WATCH = r"""
import os, sys
music = os.path.realpath(sys.argv[1])
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.utime", "os.chmod",
           "os.chown", "os.truncate", "os.link", "os.symlink", "shutil.move", "shutil.copyfile"}
bad = []
reads = []

def under(path):
    if isinstance(path, int):
        return True  # an fd: its path is unknown, so any write through it counts
    try:
        return os.path.realpath(os.fsdecode(path)).startswith(music + os.sep)
    except (TypeError, ValueError):
        return False

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = bool((flags or 0) & WRITE_FLAGS) or any(c in (mode or "") for c in "wax+")
        if writes and under(path):
            bad.append((event, str(path), mode, flags))
        elif not isinstance(path, int) and under(path):
            reads.append(path)
    elif event in CHANGES and args and under(args[0]):
        bad.append((event, str(args[0])))

sys.addaudithook(hook)
from encore.cli import app
app(["scan", music, "--dry-run", "--json", "--no-progress"], standalone_mode=False)
from pathlib import Path
from batch.library import load_state, save_state, scan_library, state_path
folder = Path(music)
state = state_path(Path(sys.argv[2]), folder)
result = scan_library(folder, load_state(state), max_bytes=2**30, progress=True)
save_state(state, folder, result.files)
scan_library(folder, load_state(state), max_bytes=2**30)
print("READS", len(reads), file=sys.stderr)
print("BAD", bad, file=sys.stderr)
"""


def test_the_scan_never_writes_under_the_music_folder(music: Path, tmp_path: Path) -> None:
    before = fingerprint(music)
    env = {**os.environ, "ENCORE_RUN_DIR": str(tmp_path / "run")}
    env.pop("ENCORE_KAFKA_BOOTSTRAP", None)
    proc = subprocess.run(
        [sys.executable, "-c", WATCH, str(music), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "BAD []" in proc.stderr, proc.stderr
    reads = int(proc.stderr.split("READS ")[1].split()[0])
    assert reads >= 5, "the audit hook saw the files being opened for reading"
    summary = json.loads(proc.stdout)
    assert summary["dry_run"]
    assert summary["events"]["tracks"] == 3
    assert fingerprint(music) == before
    assert (tmp_path / "run" / "scan").is_dir()


def test_a_copied_library_gets_the_same_track_ids(music: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    shutil.copytree(music, other, symlinks=True)
    _, a, _ = _events(music)
    _, b, _ = _events(other)
    assert sorted(t.track_id for t in a) == sorted(t.track_id for t in b)
