"""The stream workers' decoder: records to lightweight msgspec structs, same verdicts.

:func:`decode_record` gives the same accept/reject decisions, dead-letter reasons
and values as :func:`models.codec.decode_record` (the pydantic contract in
:mod:`models.events`), several times faster. It works in two steps:

* a valid record decodes in one pass with msgspec into frozen structs mirroring
  the contract's models, field for field and constraint for constraint
  (``tests/unit/test_fastcodec.py`` checks them against the models);
* anything msgspec refuses, any record msgspec could read differently
  (:func:`_for_the_contract`: whitespace, control characters or escapes anywhere,
  sub-microsecond times), and any record holding an event from the future, is
  decoded by :func:`models.codec.decode_record`, so every dead-letter reason and
  message is pydantic's own.

The structs carry what the fold reads: the fields, ``type``, ``occurred_ms`` and
(plays) ``completion_ratio``. :func:`as_model` turns one back into its pydantic
model where a consumer needs one (dead-letter bytes, the catalog and link-health
folds, which see few events).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from pydantic import BaseModel

from models import codec
from models.events import (
    MAX_BATCH_EVENTS,
    Dislike,
    Like,
    LinkCheck,
    LinkStatus,
    NewTrack,
    Play,
    PlaybackFailure,
    Skip,
    Unlike,
)

# An id's pattern (no whitespace or control characters) is not checked per field:
# :func:`_for_the_contract` sends every record holding such a byte, or any escape, to pydantic.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
ShortText = Annotated[str, msgspec.Meta(max_length=500)]
# Anchored with \Z: Python's ``$`` also matches before a final newline, Rust's does not.
Url = Annotated[str, msgspec.Meta(max_length=2_048, pattern=r"^(https?|file)://\S+\Z")]
Millis = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Duration = Annotated[int, msgspec.Meta(gt=0, le=1_000_000_000)]
Aware = Annotated[datetime, msgspec.Meta(tz=True)]
Arm = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Short64 = Annotated[str, msgspec.Meta(max_length=64)]
HttpCode = Annotated[int, msgspec.Meta(ge=100, le=599)]


class RecContext(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Mirror of :class:`models.events.RecContext`."""

    rec_id: Id
    arm: Arm
    position: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    source: Short64 | None = None


class _Event(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="type"
):
    event_id: Id
    schema_version: Literal[1] = 1
    occurred_at: Aware

    type: ClassVar[str]

    @property
    def occurred_ms(self) -> int:
        """Event time in epoch milliseconds (as :attr:`models.events._Envelope.occurred_ms`)."""
        return int(self.occurred_at.timestamp() * 1000)


class _Interaction(_Event, frozen=True, kw_only=True):
    user_id: Id
    track_id: Id
    context: RecContext | None = None


class PlayS(_Interaction, tag="play", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.Play`."""

    type: ClassVar[str] = "play"
    ms_played: Millis
    duration_ms: Duration | None = None
    completion: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    count: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 1

    def __post_init__(self) -> None:
        if self.duration_ms is None and self.completion is None:
            raise ValueError("a play needs duration_ms or completion")

    @property
    def completion_ratio(self) -> float:
        """Share of the track played (as :attr:`models.events.Play.completion_ratio`)."""
        if self.completion is not None:
            return self.completion
        assert self.duration_ms is not None
        return min(1.0, self.ms_played / self.duration_ms)


class SkipS(_Interaction, tag="skip", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.Skip`."""

    type: ClassVar[str] = "skip"
    ms_played: Millis
    duration_ms: Duration | None = None


class LikeS(_Interaction, tag="like", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.Like`."""

    type: ClassVar[str] = "like"


class UnlikeS(_Interaction, tag="unlike", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.Unlike`."""

    type: ClassVar[str] = "unlike"


class DislikeS(_Interaction, tag="dislike", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.Dislike`."""

    type: ClassVar[str] = "dislike"
    artist: bool = False


class NewTrackS(_Event, tag="track", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.NewTrack`."""

    type: ClassVar[str] = "track"
    track_id: Id
    title: ShortText | None = None
    artist: ShortText | None = None
    artist_id: Id | None = None
    album: ShortText | None = None
    genre: ShortText | None = None
    tags: Annotated[
        tuple[Annotated[str, msgspec.Meta(max_length=100)], ...], msgspec.Meta(max_length=64)
    ] = ()
    year: Annotated[int, msgspec.Meta(ge=1000, le=2200)] | None = None
    description: Text | None = None
    duration_ms: Duration | None = None
    audio_url: Url | None = None
    permalink_url: Url | None = None
    playback_count: Annotated[int, msgspec.Meta(ge=0, le=10**15)] | None = None


class PlaybackFailureS(_Event, tag="playback_failure", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.PlaybackFailure`."""

    type: ClassVar[str] = "playback_failure"
    track_id: Id
    user_id: Id | None = None
    url: Url | None = None
    error: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    http_code: HttpCode | None = None


class LinkCheckS(_Event, tag="link_check", frozen=True, kw_only=True):
    """Mirror of :class:`models.events.LinkCheck`."""

    type: ClassVar[str] = "link_check"
    track_id: Id
    url: Url
    status: LinkStatus
    http_code: HttpCode | None = None
    redirect_url: Url | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | None = None


EventStruct = PlayS | SkipS | LikeS | UnlikeS | DislikeS | NewTrackS | PlaybackFailureS | LinkCheckS


class BatchS(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="batch"
):
    """Mirror of :class:`models.events.EventBatch`."""

    events: Annotated[list[EventStruct], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]
    schema_version: Literal[1] = 1


MODEL_OF: dict[type[msgspec.Struct], type[BaseModel]] = {
    PlayS: Play,
    SkipS: Skip,
    LikeS: Like,
    UnlikeS: Unlike,
    DislikeS: Dislike,
    NewTrackS: NewTrack,
    PlaybackFailureS: PlaybackFailure,
    LinkCheckS: LinkCheck,
}
STRUCT_OF: dict[type[BaseModel], type[msgspec.Struct]] = {m: s for s, m in MODEL_OF.items()}

_DECODER = msgspec.json.Decoder(BatchS | EventStruct)
_SPACE_CONTROL_ESCAPE = re.compile(rb"[\x00-\x20\x7f\\]")
_FINE_FRACTIONS = (re.compile(rb"\.\d{7}"), re.compile(rb",\d{7}"))  # literal first: fast


def _for_the_contract(raw: bytes) -> bool:
    """Whether msgspec could read ``raw`` differently from pydantic, so pydantic decodes it.

    * A byte from 0x00 to 0x20, 0x7f or a backslash. Without these no decoded string
      holds a whitespace or control character (UTF-8 multi-byte sequences never use
      bytes below 0x80), so every id meets the contract's pattern by construction.
    * More than 6 digits after a point or comma: msgspec rounds such a time to the
      microsecond, pydantic truncates it.
    """
    return bool(_SPACE_CONTROL_ESCAPE.search(raw)) or any(f.search(raw) for f in _FINE_FRACTIONS)


def decode_record(
    raw: bytes | None, *, max_bytes: int, not_after_ms: int | None = None
) -> codec.Decoded:
    """Decode one record value into event structs; never raises on bad input.

    Same decisions, reasons and values as :func:`models.codec.decode_record` (a
    context naming an unknown arm dropped the same way); a record with an event
    dated after ``not_after_ms`` is left to it whole."""
    if raw is not None and len(raw) <= max_bytes and not _for_the_contract(raw):
        try:
            record = _DECODER.decode(raw)
        except msgspec.MsgspecError:
            pass  # pydantic says what is wrong, with the contract's reasons
        else:
            events = record.events if type(record) is BatchS else [record]
            if not_after_ms is None or all(e.occurred_ms <= not_after_ms for e in events):
                out = codec.Decoded(events=events)
                if b'"arm"' in raw:  # no escapes here, so a context's arm is spelt so
                    codec.drop_unknown_arms(out, _without_context)
                return out
    out = codec.decode_record(raw, max_bytes=max_bytes, not_after_ms=not_after_ms)
    out.events = [from_model(e) for e in out.events]
    return out


def _without_context(event: Any) -> Any:
    return msgspec.structs.replace(event, context=None)


def from_model(model: BaseModel) -> Any:
    """The struct of a validated pydantic event (no re-validation)."""
    cls = STRUCT_OF[type(model)]
    fields = {f: getattr(model, f) for f in cls.__struct_fields__}
    ctx = fields.get("context")
    if ctx is not None:
        fields["context"] = RecContext(**ctx.model_dump())
    return cls(**fields)


def as_model(event: Any) -> Any:
    """The pydantic model of an event struct (a model is returned as it is)."""
    if isinstance(event, BaseModel):
        return event
    fields = msgspec.structs.asdict(event)
    if fields.get("context") is not None:
        fields["context"] = msgspec.structs.asdict(fields["context"])
    return MODEL_OF[type(event)].model_validate(fields)
