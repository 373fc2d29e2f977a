"""Processor's settings: consumer group, concurrency, per-item limits and the retry policy."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import KafkaSettings, OtelSettings, RedisSettings, StartupSettings
from shared.eventloop import LOOP_DESCRIPTION, EventLoop
from shared.failures import MAX_ATTEMPTS_LIMIT, MAX_BASE_DELAY_S
from shared.kinds.settings import KindSettings


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_PROCESSOR_", frozen=True, extra="ignore")

    group_id: str = Field(
        "sluice-processor", description="Group of the tasks topic; retry tier N uses <group>-retry-Ns"
    )
    max_in_flight: int = Field(64, ge=1, le=10_000, description="Items run concurrently by one process")
    batches_per_poll: int = Field(8, ge=1, le=1000, description="Task batches taken from the broker at once")
    item_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Per-item timeout (a transient failure); a job may set options.timeout_s"
    )
    retry_max_attempts: int = Field(
        4, ge=1, le=MAX_ATTEMPTS_LIMIT, description="Tries per item, the first included; a job may set options.retry"
    )
    retry_base_delay_s: float = Field(
        2.0, gt=0, le=MAX_BASE_DELAY_S, description="Backoff base: retries wait about 2, 4, 8 s × (base / 2)"
    )
    retry_overrides: str = Field(
        "{}",
        description='Per-kind retry policy, a JSON object: {"web.page": {"max_attempts": 5, "base_delay_s": 1}}',
    )
    item_timeout_overrides: str = Field(
        "{}", description='Per-kind item timeout in seconds, a JSON object: {"web.page": 20}'
    )
    event_loop: EventLoop = Field("uvloop", description=LOOP_DESCRIPTION)
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of /metrics, /healthz and /readyz; 0 = off")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics port binds")
    item_spans: Literal["all", "failed"] = Field(
        "all", description="Span per item: every item, or only the failed ones (cheaper at high throughput)"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
    kinds: KindSettings = Field(default_factory=KindSettings)
