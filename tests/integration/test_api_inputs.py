"""Hostile inputs get a small, encodable 422 naming the field, never a 500.

Each case here gave a 500 before: a filter the route did not validate, a JSON body
with NaN, an infinity or a lone surrogate (whose 422 could not be encoded), and
422 bodies that echoed the whole input back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from models.codec import encode_event
from models.settings import ApiSettings, ArtifactSettings, Settings
from tests.samples import every_event_type

KEY = {"X-API-Key": "dev-ingest-key"}
JSON = {"content-type": "application/json"}
RECS = "/v1/users/u1/recommendations"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("no-artifacts")
    settings = Settings(
        artifacts=ArtifactSettings(root=root),
        api=ApiSettings(max_request_bytes=4 * 2**20),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _detail(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 422, (r.status_code, r.text[:500])
    body = orjson.loads(r.content)  # strict UTF-8 JSON: encodable by construction
    assert len(r.content) < 8_000, len(r.content)
    return body["detail"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"genres": "g" * 51}, "genres"),
        ({"genres": ",".join(f"g{i}" for i in range(21))}, "genres"),
        ({"exclude_artists": ",".join(f"a{i}" for i in range(101))}, "exclude_artists"),
        ({"exclude_artists": "a" * 129}, "exclude_artists"),
        ({"year_min": 2000, "year_max": 1990}, "year_min"),
        ({"n": "NaN"}, "n"),
        ({"n": "1e400"}, "n"),
        ({"context": "\x00"}, "context"),
    ],
)
def test_every_filter_is_validated_by_the_route(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    [err] = _detail(client.get(RECS, params=params))
    assert err["loc"] == ["query", field]


def test_filters_at_their_limits_are_accepted(client: TestClient) -> None:
    params = {
        "genres": ",".join("g" * 50 for _ in range(20)),
        "exclude_artists": ",".join("a" * 128 for _ in range(100)),
    }
    r = client.get(RECS, params=params)
    assert r.status_code == 200, r.text[:500]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"])
def test_nan_and_infinities_in_a_body_get_422(client: TestClient, number: bytes) -> None:
    body = b'{"query": "rainy sunday", "top_k": %s}' % number
    [err] = _detail(client.post("/v1/recommend", content=body, headers=JSON))
    assert err["type"] == "json_invalid"
    assert err["loc"][0] == "body"


def test_a_finite_top_k_out_of_range_names_the_field(client: TestClient) -> None:
    [err] = _detail(client.post("/v1/recommend", json={"query": "rain", "top_k": 1e300}))
    assert err["loc"] == ["body", "top_k"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/recommend", b'{"query": "\\ud800 rain"}'),
        ("/v1/recommend", b'{"query": "rain \\udfff"}'),
        ("/v1/events", encode_event(every_event_type()[3]).replace(b'"u0"', b'"u\\ud800"')),
        ("/v1/events", encode_event(every_event_type()[3]).replace(b'"t0"', b'"\\udc00"')),
    ],
)
def test_lone_surrogates_get_422_with_an_encodable_body(
    client: TestClient, path: str, body: bytes
) -> None:
    assert b"\\ud" in body
    [err] = _detail(client.post(path, content=body, headers={**JSON, **KEY}))
    assert err["type"] == "json_invalid"


def test_a_megabyte_request_gets_a_small_error(client: TestClient) -> None:
    huge = "x" * 1_000_000
    [err] = _detail(client.post("/v1/recommend", json={"query": huge}))
    assert err["loc"] == ["body", "query"]
    assert len(err["input"]) <= 101
    play = orjson.loads(encode_event(every_event_type()[1]))
    events = [{**play, "event_id": f"e{i}", "ms_played": -1, "pad": "y" * 200} for i in range(4000)]
    r = client.post("/v1/events/batch", json={"events": events}, headers=KEY)
    detail = _detail(r)
    assert len(detail) == 20
    assert r.json()["more_errors"] > 0
    extra = client.post("/v1/recommend", json={"query": "rain", "z" * 100_000: 1})
    [err] = _detail(extra)
    assert err["type"] == "extra_forbidden"
    assert len(err["loc"][1]) <= 65


def test_no_422_carries_a_python_repr(client: TestClient) -> None:
    r = client.post("/v1/identify", data={"file": "not a file"})
    [err] = _detail(r)
    assert err["loc"] == ["body", "file"]
    assert "<class" not in r.text
    assert " object at 0x" not in r.text


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("audio_url", "file:///etc/passwd"),
        ("audio_url", "file://localhost/home/user/.ssh/id_rsa"),
        ("audio_url", "http://127.0.0.1:6379/"),
        ("audio_url", "http://169.254.169.254/latest/meta-data/"),
        ("audio_url", "http://[::1]/a.mp3"),
        ("audio_url", "http://10.0.0.7/a.mp3"),
        ("permalink_url", "file:///srv/encore/var"),
    ],
)
def test_ingest_refuses_file_links_and_audio_on_this_network(
    client: TestClient, field: str, url: str
) -> None:
    track = {**orjson.loads(encode_event(every_event_type()[0])), field: url}
    [err] = _detail(client.post("/v1/events", json=track, headers=KEY))
    assert (err["type"], err["loc"]) == ("url_refused", ["body", field])
    batch = client.post("/v1/events/batch", json={"events": [track]}, headers=KEY)
    assert [e["loc"] for e in _detail(batch)] == [["body", "events", 0, field]]


def test_ingest_accepts_public_audio_and_unfetched_local_links(client: TestClient) -> None:
    track = orjson.loads(encode_event(every_event_type()[0]))
    check = orjson.loads(encode_event(every_event_type()[7]))  # url on 127.0.0.1: not fetched
    assert track["audio_url"].startswith("https://")
    for doc in (track, check):
        r = client.post("/v1/events", json=doc, headers=KEY)
        assert r.status_code == 503, r.text  # valid; this stack has no broker to take it
