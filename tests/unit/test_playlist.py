"""XSPF output is well-formed XML whatever characters ids, titles and reasons hold."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from api.playlist import xspf

XSPF = "{http://xspf.org/ns/0/}"
C0 = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)]
SURROGATES = [chr(c) for c in range(0xD800, 0xE000)]
NONCHARACTERS = ["\ufffe", "\uffff"]


def _playlist(text: str) -> bytes:
    item = {
        "track_id": f"t{text}",
        "title": f"title{text}",
        "artist": f"artist{text}",
        "reason": f"reason{text}",
        "permalink_url": f"https://example.com/{text}",
        "audio_url": f"/v1/tracks/t{text}/audio",
    }
    return xspf(f"Encore for u{text}", f"u{text}", [item], f"r{text}", "http://h/")


@pytest.mark.parametrize(
    ("kind", "chars"), [("C0", C0), ("surrogates", SURROGATES), ("U+FFFE/U+FFFF", NONCHARACTERS)]
)
def test_every_character_xml_forbids_is_replaced(kind: str, chars: list[str]) -> None:
    for ch in chars:
        root = ET.fromstring(_playlist(ch))  # expat refuses any document that is not well-formed
        assert root.find(f"{XSPF}creator").text == "u\ufffd", (kind, hex(ord(ch)))  # type: ignore[union-attr]
        track = root.find(f"{XSPF}trackList/{XSPF}track")
        assert track is not None
        assert track.find(f"{XSPF}title").text == "title\ufffd"  # type: ignore[union-attr]
        assert track.find(f"{XSPF}annotation").text == "reason\ufffd"  # type: ignore[union-attr]


def test_characters_xml_allows_are_kept() -> None:
    text = "\t\n\r ~é名\ud7ff\ue000\ufffd😀\U0010fffd"
    root = ET.fromstring(_playlist(text))
    assert root.find(f"{XSPF}title").text == f"Encore for u{text}".replace("\r", "\n")  # type: ignore[union-attr]
    location = root.find(f"{XSPF}trackList/{XSPF}track/{XSPF}location")
    assert location is not None
    assert location.text is not None
    assert location.text.startswith("http://h/v1/tracks/t")
