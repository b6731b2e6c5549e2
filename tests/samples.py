"""One valid event of every type, for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from models.events import (
    Dislike,
    Like,
    LinkCheck,
    LinkStatus,
    NewTrack,
    Play,
    PlaybackFailure,
    RecContext,
    Skip,
    Unlike,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def every_event_type(n: int = 0) -> list[Any]:
    """Eight events, one per type; ``n`` varies the ids."""
    t = T0 + timedelta(seconds=n)
    ctx = RecContext(rec_id=f"rec-{n}", arm="balanced", position=2, source="als")
    return [
        NewTrack(
            event_id=f"track-{n}",
            occurred_at=t,
            track_id=f"t{n}",
            title="Blue Night",
            artist="The Owls",
            artist_id="a1",
            genre="jazz",
            tags=("late night", "smooth"),
            year=1999,
            duration_ms=200_000,
            audio_url="https://cdn.example.com/audio/a.wav",
        ),
        Play(
            event_id=f"play-{n}",
            occurred_at=t,
            user_id=f"u{n}",
            track_id=f"t{n}",
            ms_played=180_000,
            duration_ms=200_000,
            context=ctx,
        ),
        Skip(
            event_id=f"skip-{n}", occurred_at=t, user_id=f"u{n}", track_id=f"t{n}", ms_played=4_000
        ),
        Like(event_id=f"like-{n}", occurred_at=t, user_id=f"u{n}", track_id=f"t{n}"),
        Unlike(event_id=f"unlike-{n}", occurred_at=t, user_id=f"u{n}", track_id=f"t{n}"),
        Dislike(
            event_id=f"dislike-{n}", occurred_at=t, user_id=f"u{n}", track_id=f"t{n}", artist=True
        ),
        PlaybackFailure(
            event_id=f"fail-{n}",
            occurred_at=t,
            track_id=f"t{n}",
            user_id=f"u{n}",
            error="http_404",
            http_code=404,
        ),
        LinkCheck(
            event_id=f"check-{n}",
            occurred_at=t,
            track_id=f"t{n}",
            url="http://127.0.0.1:1/a.wav",
            status=LinkStatus.MOVED,
            http_code=301,
            redirect_url="http://127.0.0.1:1/b.wav",
            latency_ms=3.5,
        ),
    ]
