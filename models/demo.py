"""The built-in demo catalog and listening history: seeded, offline, realistic in shape.

* Genres carry tag vocabularies and mood tendencies; artists belong to a genre;
  tracks to artists.
* Popularity is power-law (Zipf over artists and within each artist).
* Each user has one to three taste clusters (genres) and listens mostly inside
  them; plays, skips, likes and dislikes follow the user's affinity.
* A share of metadata is missing, as in real catalogs: about 75% of descriptions,
  half the albums, 40% of years, 30% of genres and 40% of tag lists.

With ``audio_taste`` above 0 (used by the taste classifier's evaluation only), every
track also gets a hidden 16-d audio vector (near its genre's centre) and every
listener a hidden preference direction in that space: the chance that a play is
received well (played through, maybe liked, rather than skipped or disliked)
moves by ``audio_taste`` logits per standard deviation of the track's alignment
with the listener's direction. These draws come from a generator of their own,
so with ``audio_taste`` 0 the data are exactly those of the plain demo.

Everything depends only on the arguments: same seed, same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from models.events import Dislike, Like, NewTrack, Play, Skip

GENRES: dict[str, tuple[tuple[str, ...], tuple[float, float]]] = {
    # genre: (tag vocabulary, (valence, arousal) tendency in [-1, 1])
    "ambient": (("calm", "atmospheric", "sleep", "drone", "chill", "meditative"), (0.2, -0.8)),
    "classical": (("piano", "orchestral", "calm", "romantic", "baroque", "focus"), (0.3, -0.4)),
    "jazz": (("smooth", "saxophone", "late night", "swing", "mellow", "cafe"), (0.4, -0.2)),
    "blues": (("guitar", "melancholy", "soulful", "slow", "sad", "delta"), (-0.5, -0.3)),
    "folk": (("acoustic", "singer-songwriter", "warm", "storytelling", "mellow"), (0.2, -0.4)),
    "indie": (("indie", "dreamy", "lo-fi", "bittersweet", "guitar", "nostalgic"), (0.0, 0.0)),
    "pop": (("catchy", "happy", "upbeat", "love", "summer", "dance"), (0.7, 0.5)),
    "rock": (("guitar", "energetic", "anthem", "loud", "driving", "live"), (0.2, 0.7)),
    "metal": (("heavy", "aggressive", "dark", "fast", "angry", "riffs"), (-0.6, 0.9)),
    "electronic": (("synth", "dance", "club", "energetic", "house", "night"), (0.5, 0.8)),
    "hip-hop": (("rap", "beats", "urban", "groove", "confident", "workout"), (0.3, 0.6)),
    "soul": (("groove", "romantic", "warm", "vocal", "sensual", "smooth"), (0.6, 0.1)),
}
_WORDS = [
    "midnight",
    "rain",
    "golden",
    "river",
    "ghost",
    "summer",
    "neon",
    "paper",
    "silver",
    "echo",
    "wild",
    "slow",
    "fire",
    "ocean",
    "velvet",
    "broken",
    "morning",
    "city",
    "heart",
    "shadow",
    "dream",
    "stone",
    "glass",
    "electric",
    "tender",
    "lonely",
    "northern",
    "blue",
    "highway",
    "garden",
    "winter",
    "static",
    "honey",
    "lost",
    "bright",
    "hollow",
]
_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ven",
    "tor",
    "sel",
    "an",
    "ix",
    "bel",
    "dor",
    "nua",
    "fen",
    "gra",
    "lu",
    "zo",
    "pe",
    "tin",
    "mar",
    "oli",
]


@dataclass(frozen=True)
class DemoData:
    """The demo catalog events and the listening history events, in time order."""

    tracks: list[NewTrack]
    interactions: list[Any]
    audio: np.ndarray | None = None  # (tracks, AUDIO_DIM) hidden audio, with ``audio_taste``
    preference: np.ndarray | None = None  # (users, AUDIO_DIM) unit preference directions


AUDIO_DIM = 16


def _name(rng: np.random.Generator, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES, size=parts)).capitalize()


def generate(
    *,
    seed: int = 7,
    n_tracks: int = 1_500,
    n_artists: int = 150,
    n_users: int = 300,
    mean_events: int = 60,
    end: datetime | None = None,
    days: float = 30,
    audio_taste: float = 0.0,
) -> DemoData:
    """Build the demo data. ``end`` is the time of the last event (default 2024-06-01);
    ``audio_taste``: see the module doc."""
    rng = np.random.default_rng(seed)
    end = end or datetime(2024, 6, 1, tzinfo=UTC)
    start = end - timedelta(days=days)
    genres = list(GENRES)
    artist_genre = rng.integers(0, len(genres), size=n_artists)
    artist_names = [
        f"{_name(rng, 2)} {_name(rng, 2)}" if rng.random() < 0.5 else _name(rng, 3)
        for _ in range(n_artists)
    ]
    artist_pop = 1.0 / np.arange(1, n_artists + 1) ** 0.9
    rng.shuffle(artist_pop)
    track_artist = rng.choice(n_artists, size=n_tracks, p=artist_pop / artist_pop.sum())
    track_pop = artist_pop[track_artist] * rng.pareto(2.0, size=n_tracks).clip(0, 20) + 1e-4

    tracks: list[NewTrack] = []
    for t in range(n_tracks):
        a = int(track_artist[t])
        genre = genres[artist_genre[a]]
        vocab = GENRES[genre][0]
        title = " ".join(rng.choice(_WORDS, size=int(rng.integers(1, 4)))).title()
        tags = tuple(sorted(set(rng.choice(vocab, size=int(rng.integers(1, 4))).tolist())))
        year = int(rng.integers(1965, 2025))
        tracks.append(
            NewTrack(
                event_id=f"demo-track-{t}",
                occurred_at=start - timedelta(days=int(rng.integers(1, 365))),
                track_id=f"demo:t{t}",
                title=title,
                artist=artist_names[a],
                artist_id=f"demo:a{a}",
                album=f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}"
                if rng.random() < 0.5
                else None,
                genre=genre if rng.random() < 0.7 else None,
                tags=tags if rng.random() < 0.6 else (),
                year=year if rng.random() < 0.6 else None,
                description=f"A {', '.join(tags)} {genre} track by {artist_names[a]}."
                if rng.random() < 0.25
                else None,
                duration_ms=int(np.clip(rng.normal(210_000, 45_000), 60_000, 600_000)),
                permalink_url=f"https://demo.encore.invalid/tracks/{t}",
                playback_count=int(track_pop[t] * 10_000),
            )
        )

    audio = preference = None
    if audio_taste > 0:
        hidden = np.random.default_rng([seed, AUDIO_DIM])
        centres = hidden.normal(size=(len(genres), AUDIO_DIM))
        audio = 0.8 * centres[artist_genre[track_artist]] + hidden.normal(
            size=(n_tracks, AUDIO_DIM)
        )
        preference = hidden.normal(size=(n_users, AUDIO_DIM))
        preference /= np.linalg.norm(preference, axis=1, keepdims=True)
        # alignment in standard deviations: cosine times sqrt(dim)
        align = (audio / np.linalg.norm(audio, axis=1, keepdims=True)) @ preference.T
        shift = audio_taste * np.sqrt(AUDIO_DIM) * align
    by_genre = [np.flatnonzero(artist_genre[track_artist] == g) for g in range(len(genres))]
    by_genre = [g if g.size else np.arange(n_tracks) for g in by_genre]
    everything = np.arange(n_tracks)
    cdf = {
        id(pool): np.cumsum(track_pop[pool]) / track_pop[pool].sum()
        for pool in [*by_genre, everything]
    }
    interactions: list[Any] = []
    n_events = rng.poisson(mean_events, size=n_users).clip(5, None)
    for u in range(n_users):
        liked_genres = rng.choice(len(genres), size=int(rng.integers(1, 4)), replace=False)
        times = np.sort(rng.uniform(0, days * 86_400, size=int(n_events[u])))
        for i, offset in enumerate(times):
            in_taste = rng.random() < 0.85
            pool = by_genre[int(rng.choice(liked_genres))] if in_taste else everything
            pick = min(int(np.searchsorted(cdf[id(pool)], rng.random())), pool.size - 1)
            t = int(pool[pick])
            track = tracks[t]
            duration = int(track.duration_ms or 200_000)
            when = start + timedelta(seconds=float(offset))
            base: dict[str, Any] = {
                "event_id": f"demo-u{u}-{i}",
                "occurred_at": when,
                "user_id": f"demo:u{u}",
                "track_id": track.track_id,
            }
            affinity = 0.8 if in_taste else 0.25
            if audio is not None:
                logit = np.log(affinity / (1 - affinity)) + shift[t, u]
                affinity = float(1 / (1 + np.exp(-logit)))
            roll = rng.random()
            if roll < affinity:
                share = float(rng.uniform(0.8, 1.0))
                interactions.append(
                    Play(**base, ms_played=int(duration * share), duration_ms=duration)
                )
                if rng.random() < 0.15:
                    interactions.append(
                        Like(
                            **{
                                **base,
                                "event_id": base["event_id"] + "-l",
                                "occurred_at": when + timedelta(seconds=1),
                            }
                        )
                    )
            elif roll < affinity + (1 - affinity) * 0.9:
                interactions.append(
                    Skip(**base, ms_played=int(rng.uniform(2_000, 30_000)), duration_ms=duration)
                )
            else:
                interactions.append(Dislike(**base))
    interactions.sort(key=lambda e: (e.occurred_at, e.event_id))
    return DemoData(tracks, interactions, audio, preference)
