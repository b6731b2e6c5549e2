"""Healing fills what a sparse catalog lacks, says how, and flags spoken word with reasons."""

from __future__ import annotations

from typing import Any

import numpy as np

from batch.healing import heal, non_music, popularity_tiers, richness


def sparse_catalog() -> list[dict[str, Any]]:
    return [
        {"title": "Neon Rain", "artist": "Kalo", "artist_id": "a1", "genre": "electronic",
         "tags": ["synth", "night drive"], "year": 2019},
        {"title": "Club Echo", "artist": "Kalo", "artist_id": "a1", "genre": "electronic",
         "tags": ["synth", "club"]},
        {"title": "Static Night Drive", "artist": "Kalo", "artist_id": "a1"},
        {"title": "Velvet Morning", "artist": "Mira", "artist_id": "a2", "genre": "folk",
         "tags": ["acoustic", "night drive"]},
        {"title": "Paper Garden", "artist": "Mira", "artist_id": "a2", "genre": "folk",
         "tags": ["acoustic"]},
        {"title": "Untold", "artist": "Nobody", "artist_id": "a3",
         "description": "A slow acoustic song for late evenings."},
        {"title": "The Daily Show Episode 12", "artist": "Talk FM", "artist_id": "a4",
         "genre": "Podcast", "duration_ms": 45 * 60_000},
    ]  # fmt: skip


def test_healing_fills_fields_and_reports_how() -> None:
    catalog = sparse_catalog()
    # text space: the unknown artist's track sits next to the folk tracks
    text = np.zeros((len(catalog), 4), np.float32)
    text[[0, 1, 2], 0] = 1.0
    text[[3, 4], 1] = 1.0
    text[5] = [0.1, 0.99, 0.0, 0.0]
    text[6, 3] = 1.0
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    listeners = np.array([50, 30, 10, 5, 0, 1, 2], float)
    items, report = heal(catalog, text_vectors=text, listeners=listeners)

    assert catalog[2].get("genre") is None  # input untouched
    assert items[2]["genre"] == "electronic"
    assert items[2]["healed"]["genre"] == "artist"
    assert items[5]["genre"] == "folk"
    assert items[5]["healed"]["genre"] == "text"
    # tags from the title / description, in the catalog's own vocabulary
    assert items[2]["tags"] == ["night drive"]
    assert items[2]["healed"]["tags"] == "title"
    assert items[5]["tags"] == ["acoustic"]
    assert items[5]["healed"]["tags"] == "description"
    # descriptions: kept when given, generated otherwise
    assert items[5]["description"] == catalog[5]["description"]
    assert "healed" not in items[5] or "description" not in items[5]["healed"]
    assert (
        items[0]["description"]
        == "Neon Rain is a synth, night drive electronic track by Kalo from 2019."
    )
    assert items[0]["healed"]["description"] == "generated"
    # spoken word flagged, with the rules that fired
    assert items[6]["is_music"] is False
    assert "podcast" in items[6]["non_music_reason"]
    assert all(it["is_music"] for it in items[:6])
    assert [it["popularity_tier"] for it in items] == [
        "head", "mid", "tail", "tail", "cold", "tail", "tail"
    ]  # fmt: skip
    assert items[6]["richness"] < items[0]["richness"]

    assert report["genre"] == {
        "missing": 2, "filled_from_artist": 1, "filled_from_text_neighbours": 1, "still_missing": 0
    }  # fmt: skip
    assert report["tags"]["filled_from_title"] == 1
    assert report["tags"]["filled_from_description"] == 1
    assert report["description"]["generated"] == 6
    assert report["non_music"]["flagged"] == 1
    assert report["richness"]["after_healing"] > report["richness"]["before"]


def test_non_music_needs_two_signals() -> None:
    assert non_music({"title": "Episode of my life", "genre": "rock"}) is None  # one word only
    reason = non_music({"title": "Episode 3", "duration_ms": 3_600_000})
    assert reason == "title says 'episode'; 60 min long"
    assert non_music({"genre": "spoken word", "tags": ["audiobook"]}) is not None


def test_tiers_and_richness() -> None:
    assert popularity_tiers(np.array([0.0, 0.0])) == ["cold", "cold"]
    assert popularity_tiers(np.array([10.0, 6.0, 3.0, 1.0, 0.0])) == [
        "head", "mid", "tail", "tail", "cold"
    ]  # fmt: skip
    assert richness({}) == 0.0
    full = {k: "x" for k in ("title", "artist", "genre", "tags", "description", "year", "album",
                             "audio_url")}  # fmt: skip
    assert richness(full) == 1.0
