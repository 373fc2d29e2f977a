"""Aggregator's settings: consumer group, write batching and progress throttling."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import KafkaSettings, OtelSettings, PostgresSettings, StartupSettings, WebhookSettings
from shared.eventloop import LOOP_DESCRIPTION, EventLoop


class AggregatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_AGGREGATOR_", frozen=True, extra="ignore")

    group_id: str = "sluice-aggregator"
    messages_per_poll: int = Field(200, ge=1, le=10_000, description="Result messages written per transaction")
    progress_interval_s: float = Field(1.0, ge=0, le=3600, description="At most one JobProgressed per job per interval")
    poll_max_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024, description="Result bytes fetched per poll at most"
    )
    write_retry_attempts: int = Field(8, ge=1, le=1000, description="Database write attempts before redelivery")
    detect_changes: bool = Field(
        True, description="Compare each succeeded result's fingerprint with the item's previous one (rescans)"
    )
    event_loop: EventLoop = Field("uvloop", description=LOOP_DESCRIPTION)
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of /metrics, /healthz and /readyz; 0 = off")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics port binds")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
