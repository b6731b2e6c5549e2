"""The fast decoder agrees with the pydantic contract on every record, good or bad.

Both decoders get the same random records (valid events of every type and
mutations of them) and must give the same accept/reject decision, the same
dead-letter reasons and messages, and for accepted records the same values.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from models import codec, fastcodec
from models.codec import encode_batch, encode_event
from models.events import EventBatch, RecContext
from tests.samples import every_event_type

LIMIT = 1_048_576
SETTINGS = settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dumps(obj: Any) -> bytes:
    """JSON bytes; unlike orjson, allows integers beyond 64 bits (and writes inf as Infinity)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --- valid events -------------------------------------------------------------

ID_CHARS = st.sampled_from(["a", "Z", "0", "-", "_", ":", "é", "名", "\x7e", "\x21"])
ids = st.text(ID_CHARS, min_size=1, max_size=12)
millis = st.integers(0, 1_000_000_000)
durations = st.integers(1, 1_000_000_000)
ratios = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1, 0.0, 1.0]))
urls = st.builds(lambda s, p: f"{s}://{p}", st.sampled_from(["http", "https", "file"]), ids)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 times, mostly valid, with every variation the parsers read differently."""
    year = draw(st.sampled_from(["2024", "1970", "0001", "9999", "0000", "24"]))
    month = draw(st.sampled_from(["01", "02", "12", "13", "1"]))
    day = draw(st.sampled_from(["01", "28", "29", "30", "31", "00"]))
    sep = draw(st.sampled_from(["T", "T", "t", " ", "_", "x"]))
    hms = draw(
        st.sampled_from(["12:00:00", "00:00:00", "23:59:59", "24:00:00", "23:59:60", "12:00"])
    )
    frac = draw(st.sampled_from(["", "", ".5", ".123456", ".1234567", ".9999999", ",5", "."]))
    tz = draw(
        st.sampled_from(["Z", "Z", "+00:00", "z", "-00:00", "+05:30", "+0530", "+05", "+23:59", ""])
    )
    return f"{year}-{month}-{day}{sep}{hms}{frac}{tz}"


def valid_time() -> st.SearchStrategy[str]:
    return st.builds(
        lambda d, tz: d.isoformat() + tz,
        st.datetimes(datetime(1970, 1, 2), datetime(2200, 1, 1)),
        st.sampled_from(["Z", "+00:00", "-07:00", "+05:45"]),
    )


contexts = st.fixed_dictionaries(
    {"rec_id": ids, "arm": st.sampled_from(["balanced", "x", "a" * 64])},
    optional={
        "position": st.one_of(st.none(), st.integers(0, 100_000)),
        "source": st.one_of(st.none(), st.sampled_from(["als", "", "s" * 64])),
    },
)


def _interaction(kind: str, **extra: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just(kind),
            "event_id": ids,
            "occurred_at": valid_time(),
            "user_id": ids,
            "track_id": ids,
            **extra,
        },
        optional={"context": st.one_of(st.none(), contexts), "schema_version": st.just(1)},
    )


plays = _interaction(
    "play",
    ms_played=millis,
    duration_ms=st.one_of(st.none(), durations),
    completion=st.one_of(st.none(), ratios),
    count=st.integers(1, 10_000_000),
).filter(lambda d: d["duration_ms"] is not None or d["completion"] is not None)
skips = _interaction("skip", ms_played=millis, duration_ms=st.one_of(st.none(), durations))
tracks = st.fixed_dictionaries(
    {"type": st.just("track"), "event_id": ids, "occurred_at": valid_time(), "track_id": ids},
    optional={
        "title": st.text(max_size=5),
        "artist": st.none(),
        "artist_id": ids,
        "tags": st.lists(st.text(max_size=4), max_size=4),
        "year": st.integers(1000, 2200),
        "duration_ms": durations,
        "audio_url": urls,
        "playback_count": st.integers(0, 10**15),
    },
)
failures = st.fixed_dictionaries(
    {
        "type": st.just("playback_failure"),
        "event_id": ids,
        "occurred_at": valid_time(),
        "track_id": ids,
        "error": st.sampled_from(["http_404", "t", "e" * 200]),
    },
    optional={"user_id": ids, "url": urls, "http_code": st.integers(100, 599)},
)
checks = st.fixed_dictionaries(
    {
        "type": st.just("link_check"),
        "event_id": ids,
        "occurred_at": valid_time(),
        "track_id": ids,
        "url": urls,
        "status": st.sampled_from(["unknown", "valid", "dead", "moved", "requires_auth"]),
    },
    optional={
        "http_code": st.integers(100, 599),
        "redirect_url": urls,
        "latency_ms": st.one_of(st.floats(0, 1e9), st.integers(0, 10**9)),
    },
)
valid_events = st.one_of(
    plays,
    skips,
    _interaction("like"),
    _interaction("unlike"),
    _interaction("dislike", artist=st.booleans()),
    tracks,
    failures,
    checks,
)

# --- mutations ----------------------------------------------------------------

ODD_VALUES = st.one_of(
    st.sampled_from(
        [None, True, False, 0, 1, -1, 1.0, 0.5, 1e400, "", "x", "1", "true", "a b", "a\n"]
    ),
    st.sampled_from([[], {}, [1], {"a": 1}, 2**63, -(2**63), 2**64, 10**30]),
    st.sampled_from([99, 100, 599, 600, 999, 1000, 2200, 2201, 10**15 + 1, 1_000_000_001]),
    st.sampled_from(["x" * 64, "x" * 65, "x" * 100, "x" * 101, "x" * 128, "x" * 129]),
    st.sampled_from(["x" * 200, "x" * 201, "x" * 500, "x" * 501, "i\x00d", "i\x7fd", "id\x1c"]),
    st.sampled_from(["http://a b", "http://a\n", "ftp://a", "http://", "http://a\x1cb"]),
    st.sampled_from([-0.0, 1.0000001, -1e-9, 1e9, 1e9 + 1, "NaN", 10_000_000, 10_000_001]),
    timestamps(),
    st.integers(-(10**10), 10**10),
    st.text(max_size=3),
)
IDS = ["", "x" * 128, "x" * 129, "a b", "a\n", "\x00", "a\x7f", "é" * 128, "é" * 129, 1]
URLS = ["http://a b", "http://a\n", "ftp://a", "http://", "http://a\x1cb", "file://x"]
URLS += ["http://" + "x" * 2041, "http://" + "x" * 2042]
TEXTS = ["x" * 500, "x" * 501, "x" * 10_000, "x" * 10_001, 1, "", "a\nb"]
NUMS = [-1, 0, 1, 1.0, 1.5, "5", True]
EDGES: dict[str, list[Any]] = {
    "type": ["scrobble", "batch", "served", "", "Play", 1, None],
    "schema_version": [0, 2, "1", 1.0, True, None],
    "event_id": IDS,
    "user_id": IDS,
    "track_id": IDS,
    "artist_id": IDS,
    "ms_played": [*NUMS, 1_000_000_000, 1_000_000_001],
    "duration_ms": [*NUMS, 1_000_000_000, 1_000_000_001],
    "completion": [*NUMS, -0.0, 1.0000001, -1e-9, "0.5", 1e400],
    "count": [*NUMS, 10_000_000, 10_000_001, 2**64],
    "artist": [*NUMS, False, "true", *TEXTS],
    "title": TEXTS,
    "album": TEXTS,
    "genre": TEXTS,
    "description": TEXTS,
    "tags": [["x" * 101], ["a"] * 65, ["a"] * 64, [1], "ab", ["x" * 100], None, [None]],
    "year": [*NUMS, 999, 1000, 2200, 2201, "2000"],
    "url": URLS,
    "audio_url": URLS,
    "permalink_url": URLS,
    "redirect_url": URLS,
    "status": ["valid", "VALID", "gone", 1, None, ""],
    "error": ["", "e" * 200, "e" * 201, None, 1],
    "http_code": [*NUMS, 99, 100, 599, 600, 200.0, "200"],
    "latency_ms": [*NUMS, 1e9, 1e9 + 1, 1e400],
    "playback_count": [*NUMS, 10**15, 10**15 + 1, 2**64],
    "bogus": [1, None],
}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one to three things wrong (or edge-case right) with it."""
    doc = draw(valid_events)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "edge", "edge", "edge", "odd", "time", "context"]))
        if op == "drop":
            doc.pop(draw(st.sampled_from(sorted(doc))))
        elif op == "edge":
            key = draw(st.sampled_from(sorted(doc) if draw(st.booleans()) else sorted(EDGES)))
            doc[key] = draw(st.sampled_from(EDGES.get(key, [None])))
        elif op == "odd":
            doc[draw(st.sampled_from(sorted(EDGES)))] = draw(ODD_VALUES)
        elif op == "time":
            doc["occurred_at"] = draw(st.one_of(timestamps(), timestamps(), ODD_VALUES))
        else:
            ctx = dict(draw(contexts))
            key = draw(st.sampled_from(["rec_id", "arm", "position", "source", "x"]))
            ctx[key] = draw(st.sampled_from([*IDS, *TEXTS, "a" * 64, "a" * 65, 100_000, 100_001]))
            doc["context"] = ctx
    return doc


# Latest accepted event times: none, then 2100 and mid-2024 (inside valid_time()) and 2200.
NOT_AFTER = [None, 4_102_444_800_000, 1_717_200_000_000, 7_258_118_400_000]


@st.composite
def records(draw: st.DrawFn) -> tuple[bytes, int, int | None]:
    """A record value (one event, a batch, or junk), the size limit to decode it with and
    the latest event time to accept (None: no limit)."""
    kind = draw(st.sampled_from(["event", "event", "batch", "batch", "odd_batch", "junk", "dup"]))
    if kind == "event":
        raw = dumps(draw(st.one_of(valid_events, mutated())))
    elif kind == "batch":
        members = draw(st.lists(st.one_of(valid_events, mutated()), min_size=1, max_size=6))
        raw = dumps({"type": "batch", "schema_version": 1, "events": members})
    elif kind == "odd_batch":
        batch: dict[str, Any] = {
            "type": "batch",
            "events": draw(st.lists(valid_events, max_size=3)),
        }
        op = draw(st.sampled_from(["nested", "version", "extra", "not_list", "junk_member"]))
        if op == "nested":
            batch["events"].append({"type": "batch", "events": [draw(valid_events)]})
        elif op == "version":
            batch["schema_version"] = draw(st.sampled_from([0, 2, "1", 1.0, True, None]))
        elif op == "extra":
            batch["extra"] = 1
        elif op == "not_list":
            batch["events"] = draw(st.sampled_from([None, {}, "x", 1]))
        else:
            batch["events"].append(draw(st.sampled_from([1, "x", None, [], {}])))
        raw = dumps(batch)
    elif kind == "dup":  # a repeated key: both parsers keep the last one
        body = dumps(draw(valid_events))
        key = draw(st.sampled_from(["type", "event_id", "ms_played", "schema_version"]))
        value = dumps(draw(st.one_of(ODD_VALUES, st.just("like"))))
        raw = b'{"%s":%s,' % (key.encode(), value) + body[1:]
        if draw(st.booleans()):
            raw = body[:-1] + b',"%s":%s}' % (key.encode(), value)
    else:
        raw = draw(
            st.one_of(
                st.binary(max_size=20),
                st.sampled_from([b"", b"null", b"[]", b"1", b'"x"', b"{", b'{"type":"like"']),
                st.sampled_from([b'{"a":"\\ud800"}', b"\xff\xfe{}", b'{"type":"play"}']),
            )
        )
    limit = draw(st.sampled_from([LIMIT, LIMIT, max(0, len(raw) - 1), len(raw)]))
    return raw, limit, draw(st.sampled_from(NOT_AFTER))


# --- the comparison -----------------------------------------------------------


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, datetime):
        return isinstance(b, datetime) and a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, RecContext):
        return isinstance(b, fastcodec.RecContext) and all(
            _same_value(getattr(a, f), getattr(b, f)) for f in b.__struct_fields__
        )
    return type(a) is type(b) and a == b


def assert_same_event(model: BaseModel, struct: Any) -> None:
    assert type(struct) is fastcodec.STRUCT_OF[type(model)]
    assert struct.type == model.type  # type: ignore[attr-defined]
    for name in struct.__struct_fields__:
        want, got = getattr(model, name), getattr(struct, name)
        assert _same_value(want, got), (name, want, got)
    assert struct.occurred_ms == model.occurred_ms  # type: ignore[attr-defined]
    if hasattr(model, "completion_ratio"):
        assert struct.completion_ratio == model.completion_ratio
    assert fastcodec.as_model(struct) == model


def assert_agree(
    raw: bytes | None, limit: int = LIMIT, not_after: int | None = None
) -> codec.Decoded:
    slow = codec.decode_record(raw, max_bytes=limit, not_after_ms=not_after)
    fast = fastcodec.decode_record(raw, max_bytes=limit, not_after_ms=not_after)
    assert fast.rejected == slow.rejected
    assert fast.dropped_contexts == slow.dropped_contexts
    assert len(fast.events) == len(slow.events)
    for model, struct in zip(slow.events, fast.events, strict=True):
        assert_same_event(model, struct)
    return fast


@SETTINGS
@given(records())
def test_fast_decoder_agrees_with_the_contract(record: tuple[bytes, int, int | None]) -> None:
    assert_agree(*record)


@SETTINGS
@given(st.lists(valid_events, min_size=1, max_size=8), st.sampled_from(NOT_AFTER[1:]))
def test_events_from_the_future_are_rejected_alone_by_both(
    docs: list[dict[str, Any]], not_after: int
) -> None:
    decoded = assert_agree(encode_batch(docs), not_after=not_after)
    late = [d for d in docs if fastcodec.as_model(_struct(d)).occurred_ms > not_after]
    assert [r.reason for r in decoded.rejected] == [codec.Reason.FUTURE_TIMESTAMP] * len(late)
    assert [orjson.loads(r.raw) for r in decoded.rejected] == late
    assert all(r.error.startswith("occurred_at: ") for r in decoded.rejected)
    assert len(decoded.events) == len(docs) - len(late)
    assert all(e.occurred_ms <= not_after for e in decoded.events)


def _struct(doc: dict[str, Any]) -> Any:
    return fastcodec.decode_record(orjson.dumps(doc), max_bytes=LIMIT).events[0]


@SETTINGS
@given(st.lists(valid_events, min_size=1, max_size=20))
def test_valid_records_take_the_fast_path(docs: list[dict[str, Any]]) -> None:
    for raw in [encode_batch(docs), orjson.dumps(docs[0])]:
        decoded = assert_agree(raw)
        assert decoded.rejected == []
        assert fastcodec._DECODER.decode(raw) is not None  # accepted without the fallback


@pytest.mark.parametrize("raw", [None, b"", b"[]", b'{"type": "batch", "events": []}'])
def test_agrees_on_empty_and_shapeless_records(raw: bytes | None) -> None:
    assert_agree(raw)


def test_sample_events_decode_to_structs_that_round_trip() -> None:
    events = every_event_type()
    for raw in [encode_batch(events), *map(encode_event, events)]:
        assert_agree(raw)
    decoded = fastcodec.decode_record(encode_batch(events), max_bytes=LIMIT)
    assert [fastcodec.as_model(e) for e in decoded.events] == events


def test_structs_mirror_the_models_field_for_field() -> None:
    for struct, model in fastcodec.MODEL_OF.items():
        names = [n for n in model.model_fields if n != "type"]
        assert list(struct.__struct_fields__) == names, model.__name__
        for f in msgspec.structs.fields(struct):
            info = model.model_fields[f.name]
            assert f.required == info.is_required(), (model.__name__, f.name)
            if not f.required:
                want = info.get_default(call_default_factory=True)
                assert f.default == want, (model.__name__, f.name)
    assert set(fastcodec.RecContext.__struct_fields__) == set(RecContext.model_fields)
    assert set(fastcodec.BatchS.__struct_fields__) == set(EventBatch.model_fields) - {"type"}


@pytest.mark.parametrize("escaped", [False, True])
def test_a_context_with_an_unknown_arm_is_dropped_and_the_play_kept(escaped: bool) -> None:
    play = orjson.loads(encode_event(every_event_type()[1]))
    made_up = {**play, "event_id": "p2", "context": {**play["context"], "arm": "made-up"}}
    raw = encode_batch([play, made_up])
    if escaped:  # spelt with an escape: the fast decoder leaves it to the contract
        raw = raw.replace(b'"arm":"made-up"', b'"\\u0061rm":"made-up"')
    decoded = assert_agree(raw)
    assert decoded.rejected == []
    assert decoded.dropped_contexts == 1
    [kept, stripped] = [fastcodec.as_model(e) for e in decoded.events]
    assert kept.context is not None
    assert kept.context.arm == "balanced"
    assert stripped.event_id == "p2"
    assert stripped.context is None
    assert stripped.model_copy(update={"context": kept.context, "event_id": "play-0"}) == kept


def test_submicrosecond_times_go_to_the_contract() -> None:
    raw = orjson.dumps(
        {
            "type": "like",
            "event_id": "e",
            "user_id": "u",
            "track_id": "t",
            "occurred_at": "2024-01-01T00:00:00.9999999Z",
        }
    )
    with pytest.raises(AssertionError):  # msgspec alone would round up to the next second
        assert_same_event(
            codec.decode_record(raw, max_bytes=LIMIT).events[0],
            msgspec.json.decode(raw, type=fastcodec.LikeS),
        )
    assert_agree(raw)


def _base_docs() -> list[dict[str, Any]]:
    docs = [orjson.loads(encode_event(e)) for e in every_event_type()]
    docs.append({**docs[1], "duration_ms": None, "completion": 0.5, "count": 3})
    return docs


def test_every_edge_value_of_every_field() -> None:
    """Each field of each type set to each edge value, or dropped, alone and in a batch."""
    checked = 0
    for base in _base_docs():
        for key, values in EDGES.items():
            variants = [{k: v for k, v in base.items() if k != key}]
            variants += [{**base, key: v} for v in values]
            for doc in variants:
                raw = dumps(doc)
                assert_agree(raw)
                assert_agree(dumps({"type": "batch", "events": [base, doc]}))
                checked += 1
    assert checked > 1_500


def test_every_timestamp_shape() -> None:
    base = _base_docs()[3]
    parts = [
        ["2024", "0000", "24"],
        ["01", "02", "13"],
        ["01", "29", "30", "00"],
        ["T", "t", " ", "_"],
        ["12:00:00", "24:00:00", "23:59:60", "12:00"],
        ["", ".5", ".123456", ".1234567", ".9999999", ",5", "."],
        ["Z", "z", "+00:00", "-00:00", "+05:30", "+0530", "+05", "+23:59", "+24:00", ""],
    ]
    for y, mo, d, sep, hms, frac, tz in itertools.product(*parts):
        assert_agree(dumps({**base, "occurred_at": f"{y}-{mo}-{d}{sep}{hms}{frac}{tz}"}))
