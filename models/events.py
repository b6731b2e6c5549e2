"""The event contract: every event Encore accepts, defined once.

Apps, the ingest API, the stream agents, the batch loaders and the tests all use
these models. Each event is a frozen pydantic model with a ``type``
discriminator and a ``schema_version``; one Kafka record holds either one event
or an :class:`EventBatch` (many events of one partition, for high-rate
producers). JSON Schema is generated from these models (``encore schema``).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1
"""The only schema version this code reads and writes."""

MAX_BATCH_EVENTS = 10_000
"""Most events one batch record may carry."""

Id = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x20\x7f]+$",
        description="Opaque identifier: 1-128 characters, no whitespace or control characters.",
    ),
]
Text = Annotated[str, Field(max_length=10_000)]
ShortText = Annotated[str, Field(max_length=500)]
Url = Annotated[str, Field(max_length=2_048, pattern=r"^(https?|file)://\S+$")]
Millis = Annotated[
    int, Field(ge=0, le=1_000_000_000, description="Milliseconds (at most ~11 days).")
]
Duration = Annotated[int, Field(gt=0, le=1_000_000_000, description="Milliseconds, positive.")]


class LinkStatus(enum.StrEnum):
    """Health of a track's audio link."""

    UNKNOWN = "unknown"
    VALID = "valid"
    DEAD = "dead"
    MOVED = "moved"
    REQUIRES_AUTH = "requires_auth"


class RecContext(BaseModel):
    """Which recommendation produced the interaction, for bandit rewards and evaluation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rec_id: Id = Field(description="The `rec_id` of the recommendation response.")
    arm: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The bandit arm that produced the list."
    )
    position: Annotated[int, Field(ge=0, le=100_000)] | None = Field(
        default=None, description="0-based position of the track in the list."
    )
    source: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="Candidate source of the track (als, trending, ...)."
    )


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Id = Field(description="Unique per event; a resend with the same id is dropped.")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version.")
    occurred_at: AwareDatetime = Field(
        description="Event time (ISO-8601 with offset); state folds by this time, not arrival."
    )

    @cached_property
    def occurred_ms(self) -> int:
        """Event time in epoch milliseconds."""
        return int(self.occurred_at.timestamp() * 1000)


class _Interaction(_Envelope):
    user_id: Id
    track_id: Id
    context: RecContext | None = Field(default=None, description="Recommendation context.")


class Play(_Interaction):
    """The user played a track (fully or in part)."""

    type: Literal["play"] = "play"
    ms_played: Millis = Field(description="Milliseconds actually played.")
    duration_ms: Duration | None = Field(default=None, description="Track duration.")
    completion: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        default=None, description="Share of the track played, 0-1; derived when absent."
    )
    count: Annotated[int, Field(ge=1)] = Field(
        default=1, le=10_000_000, description="Plays this event stands for (history imports)."
    )

    @model_validator(mode="after")
    def _needs_duration_or_completion(self) -> Play:
        if self.duration_ms is None and self.completion is None:
            raise ValueError("a play needs duration_ms or completion")
        return self

    @property
    def completion_ratio(self) -> float:
        """Share of the track played, from ``completion`` or ``ms_played / duration_ms``."""
        if self.completion is not None:
            return self.completion
        assert self.duration_ms is not None
        return min(1.0, self.ms_played / self.duration_ms)


class Skip(_Interaction):
    """The user skipped a track after ``ms_played`` milliseconds."""

    type: Literal["skip"] = "skip"
    ms_played: Millis = Field(description="Milliseconds played before the skip.")
    duration_ms: Duration | None = Field(default=None, description="Track duration.")


class Like(_Interaction):
    """The user liked a track."""

    type: Literal["like"] = "like"


class Unlike(_Interaction):
    """The user took back a like."""

    type: Literal["unlike"] = "unlike"


class Dislike(_Interaction):
    """The user asked not to hear a track (and, with ``artist``, its artist) again."""

    type: Literal["dislike"] = "dislike"
    artist: bool = Field(default=False, description="Also block the track's artist.")


class NewTrack(_Envelope):
    """A track entered the catalog. Most metadata is optional: real catalogs are sparse."""

    type: Literal["track"] = "track"
    track_id: Id
    title: ShortText | None = None
    artist: ShortText | None = None
    artist_id: Id | None = None
    album: ShortText | None = None
    genre: ShortText | None = None
    tags: tuple[Annotated[str, Field(max_length=100)], ...] = Field(default=(), max_length=64)
    year: Annotated[int, Field(ge=1000, le=2200)] | None = None
    description: Text | None = None
    duration_ms: Duration | None = None
    audio_url: Url | None = None
    permalink_url: Url | None = None
    playback_count: Annotated[int, Field(ge=0, le=10**15)] | None = None


class PlaybackFailure(_Envelope):
    """A client failed to play a track's audio link."""

    type: Literal["playback_failure"] = "playback_failure"
    track_id: Id
    user_id: Id | None = None
    url: Url | None = None
    error: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="Short error code or text, e.g. 'http_404', 'timeout', 'decode'."
    )
    http_code: Annotated[int, Field(ge=100, le=599)] | None = None


class LinkCheck(_Envelope):
    """The prober (or anyone) checked a track's audio link."""

    type: Literal["link_check"] = "link_check"
    track_id: Id
    url: Url
    status: LinkStatus
    http_code: Annotated[int, Field(ge=100, le=599)] | None = None
    redirect_url: Url | None = None
    latency_ms: Annotated[float, Field(ge=0, le=1e9)] | None = None


class ServedItem(BaseModel):
    """One track of a served list, at its 0-based position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: Id
    position: Annotated[int, Field(ge=0, le=100_000)] = Field(description="0-based position.")
    sources: tuple[Annotated[str, Field(max_length=64)], ...] = Field(
        default=(),
        max_length=16,
        description="Candidate sources of the track (als, trending, ...).",
    )


class ServedList(BaseModel):
    """A personal list the API served, with the bandit arm and its logged propensity.

    Written by the API to the ``recommendations`` topic (keyed by user, like the
    interactions, so a user's lists and feedback share partition numbers) and
    joined by ``rec_id`` with the feedback's :class:`RecContext` for off-policy
    evaluation. Not an input :data:`Event`: no stream agent folds it, and a served
    list sent to an input topic is dead-lettered as an unknown type.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["served"] = "served"
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Contract version.")
    rec_id: Id = Field(description="The `rec_id` of the response; feedback carries it back.")
    user_id: Id
    occurred_at: AwareDatetime = Field(description="When the list was served.")
    arm: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The bandit arm whose blend weights ranked the list."
    )
    propensity: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="Probability the logging policy (Thompson sampling) chose this arm."
    )
    items: tuple[ServedItem, ...] = Field(default=(), max_length=1_000)
    model_versions: dict[
        Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=128)] | None
    ] = Field(default_factory=dict, max_length=32, description="Artifact version per kind.")
    context: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The request's context (e.g. `playlist`)."
    )

    @cached_property
    def occurred_ms(self) -> int:
        """Serve time in epoch milliseconds."""
        return int(self.occurred_at.timestamp() * 1000)


Interaction = Play | Skip | Like | Unlike | Dislike
TrackHealthEvent = PlaybackFailure | LinkCheck
Event = Annotated[
    Play | Skip | Like | Unlike | Dislike | NewTrack | PlaybackFailure | LinkCheck,
    Field(discriminator="type"),
]
INTERACTION_TYPES = frozenset({"play", "skip", "like", "unlike", "dislike"})
EVENT_TYPES = frozenset(INTERACTION_TYPES | {"track", "playback_failure", "link_check"})


class EventBatch(BaseModel):
    """Many events in one Kafka record; all must belong to the record's partition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["batch"] = "batch"
    schema_version: Literal[1] = SCHEMA_VERSION
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


AnyRecord = Annotated[
    EventBatch | Play | Skip | Like | Unlike | Dislike | NewTrack | PlaybackFailure | LinkCheck,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
RECORD_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyRecord)
"""A whole record (one event or a batch), validated straight from JSON bytes."""


def parse_event(obj: Any) -> Any:
    """Validate one decoded JSON object into its event model (raises ``ValidationError``)."""
    return EVENT_ADAPTER.validate_python(obj)


def event_to_dict(event: BaseModel) -> dict[str, Any]:
    """The JSON-ready form of an event, without null fields."""
    return event.model_dump(mode="json", exclude_none=True)


def utcnow() -> datetime:
    """Timezone-aware current time (for producers; pure code takes time as an argument)."""
    return datetime.now(UTC)


def json_schema() -> dict[str, Any]:
    """JSON Schema of a record: one event or a batch of events."""
    single = EVENT_ADAPTER.json_schema(ref_template="#/$defs/{model}")
    batch = EventBatch.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**single.pop("$defs", {}), **batch.pop("$defs", {})}
    defs["EventBatch"] = batch
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://encore.example/schema/record/v{SCHEMA_VERSION}.json",
        "title": "Encore record",
        "description": "One Kafka record: a single event or a batch of events.",
        "oneOf": [*single.get("oneOf", [single]), {"$ref": "#/$defs/EventBatch"}],
        "discriminator": {"propertyName": "type"},
        "$defs": defs,
    }
