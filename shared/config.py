"""Settings sections shared by the services; each service composes them into one frozen BaseSettings.

Every value can be set from the environment. The three connection strings also answer to the
conventional names (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, REDIS_URL) so one set of variables
points every service, and the tests, at the same infrastructure.
"""

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sluice.client.kafka_auth import KafkaAuth, KafkaConnection, SaslMechanism, SecurityProtocol
from sluice.contracts.topics import TopicNames


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="ignore", populate_by_name=True)


class KafkaSettings(BaseSettings):
    """Where the broker is, how topics are named and sized, and how we produce."""

    model_config = _section("SLUICE_KAFKA_")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SLUICE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    topic_prefix: str = Field("sluice", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    task_partitions: int = Field(12, ge=1, le=1024)
    result_partitions: int = Field(12, ge=1, le=1024)
    request_partitions: int = Field(6, ge=1, le=1024)
    job_event_partitions: int = Field(6, ge=1, le=1024)
    rejected_partitions: int = Field(3, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=5, description="Replicas of each topic Sluice creates")
    min_insync_replicas: int | None = Field(
        None, ge=1, le=5, description="Topics' min.insync.replicas (unset: the broker's default); 2 with 3 replicas"
    )
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL", "SLUICE_KAFKA_SECURITY_PROTOCOL")
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "SLUICE_KAFKA_SASL_MECHANISM")
    )
    sasl_username: str | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "SLUICE_KAFKA_SASL_USERNAME")
    )
    sasl_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SASL_PASSWORD", "SLUICE_KAFKA_SASL_PASSWORD")
    )
    ssl_cafile: Path | None = Field(None, validation_alias=AliasChoices("KAFKA_SSL_CAFILE", "SLUICE_KAFKA_SSL_CAFILE"))
    ssl_certfile: Path | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SSL_CERTFILE", "SLUICE_KAFKA_SSL_CERTFILE")
    )
    ssl_keyfile: Path | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SSL_KEYFILE", "SLUICE_KAFKA_SSL_KEYFILE")
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "zstd", description="Producer compression (zstd took the least CPU per message, broker and clients together)"
    )
    linger_ms: int = Field(5, ge=0, le=1000)
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024 * 1024, le=64 * 1024 * 1024)
    retry_tiers_s: list[int] = Field(
        default_factory=lambda: [2, 4, 8, 30, 120],
        description="Delays of the retry topics, in seconds; a retry waits in the smallest tier >= its delay",
    )
    session_timeout_ms: int = Field(
        10_000, ge=3_000, le=300_000, description="A consumer silent this long is dropped from its group"
    )
    fetch_max_wait_ms: int = Field(
        50,
        ge=1,
        le=30_000,
        description="How long a fetch waits at the broker for data; a broker that does not answer a waiting fetch "
        "when data arrives (the dev broker) adds up to this much latency per hop",
    )
    idle_fetch_max_wait_ms: int = Field(
        200,
        ge=1,
        le=30_000,
        description="After 1 s without data, a consumer's fetch wait doubles per empty fetch up to this (every "
        "empty fetch costs the dev broker work); the first records bring it back to fetch_max_wait_ms",
    )
    publish_window: int = Field(256, ge=1, le=100_000, description="Unacknowledged sends in flight")
    request_timeout_ms: int = Field(15_000, ge=1000, le=300_000)

    @model_validator(mode="after")
    def _auth_consistent(self) -> "KafkaSettings":
        if self.min_insync_replicas is not None and self.min_insync_replicas > self.replication_factor:
            raise ValueError("min_insync_replicas cannot exceed replication_factor: no write could ever succeed")
        self.auth  # noqa: B018 -- validates the security settings together, at start-up
        return self

    @property
    def topics(self) -> "TopicNames":
        return TopicNames.for_prefix(self.topic_prefix)

    @property
    def connection(self) -> KafkaConnection:
        """Where every Kafka client of the service connects, and how it authenticates."""
        return KafkaConnection(bootstrap_servers=self.bootstrap_servers, auth=self.auth)

    @property
    def auth(self) -> KafkaAuth:
        """The security settings as every Kafka client takes them."""
        return KafkaAuth.parse(
            {name: getattr(self, name) for name in KafkaAuth.model_fields if getattr(self, name) is not None}
        )


class PostgresSettings(BaseSettings):
    """The read model's database."""

    model_config = _section("SLUICE_POSTGRES_")

    url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/sluice",
        validation_alias=AliasChoices("DATABASE_URL", "SLUICE_POSTGRES_URL"),
    )
    pool_min: int = Field(1, ge=0, le=100)
    pool_max: int = Field(10, ge=1, le=500)
    command_timeout_s: float = Field(60.0, gt=0, le=3600)


class RedisSettings(BaseSettings):
    """The shared fast state: cancellation flags and rate limits. Optional: while it fails or hangs, the
    services skip it (circuit breaker) and go on degraded."""

    model_config = _section("SLUICE_REDIS_")

    url: str = Field("redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "SLUICE_REDIS_URL"))
    op_timeout_s: float = Field(0.25, gt=0, le=30)
    """Each hot-path call's deadline (connect included); past it the call counts as failed."""
    breaker_backoff_s: float = Field(5.0, gt=0, le=600)
    """After a failure or timeout, Redis is skipped this long, then one call probes it."""


class OtelSettings(BaseSettings):
    """Tracing switches; the exporter itself follows the standard OTEL_* variables."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    otel_sdk_disabled: bool = False
    otel_exporter_otlp_endpoint: str | None = None
    otel_traces_exporter: str | None = None


class StartupSettings(BaseSettings):
    """How long a service waits for its dependencies before giving up with a named error."""

    model_config = _section("SLUICE_STARTUP_")

    attempts: int = Field(30, ge=1, le=1000)
    delay_s: float = Field(1.0, gt=0, le=60)


class WebhookSettings(BaseSettings):
    """Job completion callbacks: signing, retries and which networks a callback_url may reach."""

    model_config = _section("SLUICE_WEBHOOK_")

    secret: str | None = Field(
        None, description="HMAC-SHA256 key of the X-Sluice-Signature header; unset, callbacks are not sent"
    )
    max_attempts: int = Field(8, ge=1, le=100, description="Tries per delivery before it is marked failed")
    base_delay_s: float = Field(2.0, gt=0, le=3600, description="Backoff: the n-th retry waits base × 2^(n-1)")
    max_delay_s: float = Field(600.0, gt=0, le=86_400, description="Cap of one backoff wait")
    timeout_s: float = Field(10.0, gt=0, le=300, description="One delivery request's timeout")
    poll_interval_s: float = Field(1.0, gt=0, le=60, description="How often the dispatcher looks for due deliveries")
    allow_networks: list[str] = Field(
        default_factory=list,
        description='Non-public networks callbacks may reach, e.g. ["127.0.0.0/8"]; public addresses always may',
    )


class FlowSettings(BaseSettings):
    """Flow control: how the dispatcher releases backlogged task batches into the tasks topic."""

    model_config = _section("SLUICE_FLOW_")

    window_batches: int = Field(
        512, ge=1, le=1_000_000, description="Batches in flight fleet-wide (released, results not yet recorded)"
    )
    kind_max_in_flight: str = Field(
        "{}", description='Per-kind cap on batches in flight fleet-wide, a JSON object: {"web.page": 100}'
    )
    quantum_batches: int = Field(
        1, ge=1, le=10_000, description="Batches a tenant of weight 1 may release per round-robin turn"
    )
    tick_s: float = Field(
        0.25,
        gt=0,
        le=10,
        description="Longest dispatcher pause when nothing can be released; an admitted job or a returned credit "
        "wakes it at once (LISTEN/NOTIFY)",
    )
    housekeeping_interval_s: float = Field(
        0.25, gt=0, le=60, description="How often waiting jobs are admitted and finished jobs' batches dropped"
    )
    leader_retry_s: float = Field(1.0, gt=0, le=60, description="How often a standby intake tries to lead")
    waiting_full_retry_after_s: int = Field(
        30, ge=1, le=3600, description="Retry-After of the 429 when a tenant's waiting line is full"
    )
    dispatcher_enabled: bool = Field(True, description="false: this intake replica never runs the dispatcher")
