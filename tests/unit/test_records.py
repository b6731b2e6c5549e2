"""The stored form of a listener's state: exact round trips, compactness, bad bytes."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.events import Dislike, Like, Play, Skip
from models.records import (
    TRACK_FIELDS,
    TYPES,
    RecordError,
    decode_lag,
    decode_link_status,
    decode_track,
    decode_updated_ms,
    decode_user,
    encode_lag,
    encode_track,
    encode_user,
)
from models.state import FoldConfig, ItemInfo, UserState, apply_interaction
from tests.samples import T0

CFG = FoldConfig()
IDS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="\x7f"),
    min_size=1,
    max_size=12,
)
MS = st.integers(min_value=0, max_value=4_102_444_800_000)  # up to 2100


def _same(a: UserState, b: UserState) -> None:
    assert (a.vec is None) == (b.vec is None)
    if a.vec is not None and b.vec is not None:
        assert a.vec.dtype == b.vec.dtype == np.float32
        np.testing.assert_array_equal(a.vec, b.vec)
    assert (a.vec_t, a.model, a.n, a.last_ms) == (b.vec_t, b.model, b.n, b.last_ms)
    assert a.hist == b.hist
    assert [h[3].hex() for h in a.hist] == [h[3].hex() for h in b.hist]  # -0.0 stays -0.0
    assert [type(x) for h in a.hist for x in h] == [type(x) for h in b.hist for x in h]
    assert list(a.session.items()) == list(b.session.items())
    for name in ("liked", "neg_tracks", "neg_artist_of"):
        assert list(getattr(a, name).items()) == list(getattr(b, name).items())


@st.composite
def states(draw: st.DrawFn) -> UserState:
    """Arbitrary states in the shape the fold keeps (history in time order, times at or
    before the last event time)."""
    last = draw(MS)
    m = draw(st.integers(0, 40))
    times = sorted(draw(st.lists(st.integers(0, last), min_size=m, max_size=m)))
    weight = st.one_of(
        st.sampled_from([1.0, 1.5, -1.5, -2.0, -0.7333, 1.6931, 0.0, -0.0]),
        st.integers(-40_000, 40_000).map(lambda k: round(k / 10_000, 4)),
        st.floats(-10, 10, allow_nan=False),  # not on the 4-decimal grid: stored as float64
    )
    hist = [[draw(IDS), t, draw(st.sampled_from(TYPES)), draw(weight)] for t in times]
    when = st.integers(0, last)
    dim = draw(st.sampled_from([0, 1, 3, 64]))
    vec = None
    if dim:
        vals = st.floats(-1e6, 1e6, allow_nan=False, width=32)
        vec = np.array(draw(st.lists(vals, min_size=dim, max_size=dim)), dtype=np.float32)
    session: dict[str, int] = {}
    if draw(st.booleans()):
        s_last = draw(when)
        start = draw(st.integers(0, s_last))
        session = {"start": start, "last": s_last, "plays": draw(st.integers(0, 10**6))}
        session |= {"skips": draw(st.integers(0, 500)), "streak": draw(st.integers(0, 500))}
    return UserState(
        vec=vec,
        vec_t=draw(when) if vec is not None else 0,
        model=draw(st.text(max_size=40)) if vec is not None else draw(st.just("")),
        hist=hist,
        session=session,
        neg_tracks=draw(st.dictionaries(IDS, when, max_size=5)),
        neg_artist_of=draw(st.dictionaries(IDS, when, max_size=3)),
        liked=draw(st.dictionaries(IDS, when, max_size=5)),
        n=draw(st.integers(0, 10**9)),
        last_ms=last,
    )


@settings(max_examples=300, deadline=None)
@given(states())
def test_any_state_round_trips_exactly(state: UserState) -> None:
    raw = encode_user(state)
    back = decode_user(raw)
    _same(back, state)
    assert encode_user(back) == raw


def test_a_folded_listener_round_trips_and_is_compact() -> None:
    rng = np.random.default_rng(3)
    state = UserState()
    vectors = {f"t{i}": rng.normal(size=64).astype(np.float32) for i in range(50)}
    for i in range(20):
        track = f"t{int(rng.integers(0, 50))}"
        when = T0 + timedelta(seconds=180 * i)
        kind = ("play", "play", "skip", "like", "dislike")[i % 5]
        if kind == "play":
            e = Play(
                event_id=f"e{i}",
                occurred_at=when,
                user_id="u",
                track_id=track,
                ms_played=150_000,
                completion=float(rng.uniform(0.1, 1.0)),
            )
        elif kind == "skip":
            e = Skip(event_id=f"e{i}", occurred_at=when, user_id="u", track_id=track, ms_played=9)
        elif kind == "like":
            e = Like(event_id=f"e{i}", occurred_at=when, user_id="u", track_id=track)
        else:
            e = Dislike(event_id=f"e{i}", occurred_at=when, user_id="u", track_id=track)
        apply_interaction(state, e, ItemInfo(vectors[track]), CFG, "20261130T194051123456Z")
    raw = encode_user(state)
    _same(decode_user(raw), state)
    # 256 bytes of vector; the rest, 20 history entries and the session, about 10 each
    assert 256 < len(raw) < 256 + 300


def test_nothing_stored_is_a_new_listener() -> None:
    _same(decode_user(None), UserState())
    _same(decode_user(b""), UserState())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x03", "version 3"),
        (b"\x01\x80", "ends inside a number"),
        (b"\x01\x01\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "vector"),
    ],
)
def test_bytes_that_are_not_a_state_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        decode_user(raw)


def test_an_unknown_event_type_cannot_be_stored() -> None:
    with pytest.raises(ValueError, match="wave"):
        UserState(hist=[["t", 5, "wave", 1.0]], n=1, last_ms=5)
    state = UserState(hist=[["t", 5, "play", 1.0]], n=1, last_ms=5)
    raw = bytearray(encode_user(state))
    assert raw[-4:] == bytes([0, 0, 0, 0])  # the history's one code, then three empty maps
    raw[-4] = 7 << 5  # type 7
    with pytest.raises(RecordError, match="history code out of range"):
        decode_user(bytes(raw))


def test_a_catalog_track_round_trips_through_its_hash_fields() -> None:
    text = np.arange(4, dtype=np.float32) / 7
    fields = encode_track(
        {"title": "Rain", "artist": "A"}, 1_700, model="c1", text=text, valence=0.25
    )
    stored = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}
    back = decode_track("t1", [stored.get(f) for f in TRACK_FIELDS])
    assert back is not None
    assert (back.track_id, back.meta, back.cf_model, back.updated_ms) == (
        "t1",
        {"title": "Rain", "artist": "A"},
        "c1",
        1_700,
    )
    assert back.text is not None
    np.testing.assert_array_equal(back.text, text)
    assert (back.cf, back.valence, back.arousal) == (None, 0.25, None)
    assert decode_updated_ms(stored["updated_ms"]) == 1_700
    assert decode_track("t2", [None] * len(TRACK_FIELDS)) is None
    assert decode_updated_ms(None) is None


def test_lag_and_link_status_values() -> None:
    assert decode_lag(encode_lag(42, 1_700).encode()) == 42
    assert decode_link_status(None) == "unknown"
    assert decode_link_status(b"dead") == "dead"


@pytest.mark.parametrize(
    ("model", "compact"),
    [
        ("20261130T194051123456Z", True),  # an artifact version name: stored as its time
        ("19700101T000000000000Z", True),
        ("20261399T194051123456Z", False),  # not a date: stored as text
        ("20261130T194051123456Zx", False),
        ("als-v3", False),
        ("", False),
    ],
)
def test_the_model_version_round_trips_whatever_its_form(model: str, compact: bool) -> None:
    def stored(name: str) -> bytes:
        return encode_user(
            UserState(vec=np.ones(2, dtype=np.float32), vec_t=5, model=name, n=1, last_ms=5)
        )

    raw = stored(model)
    assert decode_user(raw).model == model
    text_size = len(stored("x" * len(model)))  # the same length, never a version name
    assert (len(raw) < text_size - 10) is compact


def test_a_version_1_state_still_reads() -> None:
    state = UserState(vec=np.ones(2, dtype=np.float32), vec_t=5, model="als-v3", n=1, last_ms=5)
    v2 = encode_user(state)
    assert v2[0] == 2
    # version 1 wrote the model as length then text; "als-v3" is text in version 2 too,
    # written as length + 1
    v1 = bytes([1]) + v2[1:4] + bytes([v2[4] - 1]) + v2[5:]
    _same(decode_user(v1), state)
