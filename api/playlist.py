"""XSPF 1.0 playlists (https://xspf.org/spec).

Every text in the document passes :func:`xml_text` first: ids, titles and
reasons come from requests and the catalog, and may hold characters XML 1.0
does not allow at all (C0 controls other than tab, LF and CR, lone surrogates,
U+FFFE, U+FFFF); escaping cannot help there (``&#1;`` is not well-formed
either), so each becomes U+FFFD.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urljoin

XSPF_NS = "http://xspf.org/ns/0/"
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can carry: every character it does not allow as U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(value))


def xspf(
    title: str, creator: str, items: Sequence[dict[str, Any]], rec_id: str, base_url: str = ""
) -> bytes:
    """A valid XSPF 1.0 document for recommended tracks (location when the audio is known;
    a served path such as ``/v1/tracks/{id}/audio`` is made absolute with ``base_url``)."""
    ET.register_namespace("", XSPF_NS)
    root = ET.Element(f"{{{XSPF_NS}}}playlist", {"version": "1"})
    ET.SubElement(root, f"{{{XSPF_NS}}}title").text = xml_text(title)
    ET.SubElement(root, f"{{{XSPF_NS}}}creator").text = xml_text(creator)
    ET.SubElement(root, f"{{{XSPF_NS}}}date").text = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()
    )
    ET.SubElement(root, f"{{{XSPF_NS}}}identifier").text = xml_text(f"urn:encore:rec:{rec_id}")
    tracks = ET.SubElement(root, f"{{{XSPF_NS}}}trackList")
    for item in items:
        track = ET.SubElement(tracks, f"{{{XSPF_NS}}}track")
        if item.get("audio_url"):
            location = urljoin(base_url, str(item["audio_url"]))
            ET.SubElement(track, f"{{{XSPF_NS}}}location").text = xml_text(location)
        ET.SubElement(track, f"{{{XSPF_NS}}}identifier").text = "urn:encore:track:" + quote(
            str(item["track_id"]), safe=":", errors="surrogatepass"
        )
        if item.get("title"):
            ET.SubElement(track, f"{{{XSPF_NS}}}title").text = xml_text(item["title"])
        if item.get("artist"):
            ET.SubElement(track, f"{{{XSPF_NS}}}creator").text = xml_text(item["artist"])
        if item.get("reason"):
            ET.SubElement(track, f"{{{XSPF_NS}}}annotation").text = xml_text(item["reason"])
        if item.get("permalink_url"):
            ET.SubElement(track, f"{{{XSPF_NS}}}info").text = xml_text(item["permalink_url"])
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
