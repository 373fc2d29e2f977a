"""Processor's settings: consumer group, concurrency and per-item limits."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import KafkaSettings, OtelSettings, RedisSettings, StartupSettings
from shared.kinds.settings import KindSettings


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_PROCESSOR_", frozen=True, extra="ignore")

    group_id: str = "sluice-processor"
    max_in_flight: int = Field(64, ge=1, le=10_000, description="Items run concurrently by one process")
    batches_per_poll: int = Field(8, ge=1, le=1000, description="Task batches taken from the broker at once")
    item_timeout_s: float = Field(30.0, gt=0, le=3600)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
    kinds: KindSettings = Field(default_factory=KindSettings)
