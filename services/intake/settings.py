"""Intake's settings: the REST server, batching limits and the Kafka front door."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import FlowSettings, KafkaSettings, OtelSettings, PostgresSettings, RedisSettings, StartupSettings
from shared.kinds.settings import KindSettings
from shared.plans import TenancySettings
from sluice.contracts.events import MAX_BATCH_SIZE


class IntakeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_INTAKE_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    http: Literal["httptools", "h11"] = Field("httptools", description="HTTP parser (`h11`: pure Python, the fallback)")
    loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="Event loop (`asyncio`: the standard library's, the fallback)"
    )
    batch_size: int = Field(50, ge=1, le=MAX_BATCH_SIZE, description="Items per TaskBatch message")
    max_json_items: int = Field(10_000, ge=1, le=1_000_000, description="Above this, upload NDJSON instead")
    max_json_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    max_items_per_job: int = Field(10_000_000, ge=1, le=1_000_000_000)
    max_item_bytes: int = Field(512 * 1024, ge=256, le=8 * 1024 * 1024)
    spool_memory_bytes: int = Field(
        8 * 1024 * 1024, ge=0, le=1024 * 1024 * 1024, description="NDJSON upload kept in memory before spilling to disk"
    )
    publish_stall_timeout_s: float = Field(
        10.0, gt=0, le=600, description="No broker acknowledgement for this long answers 503"
    )
    broker_check_ttl_s: float = Field(
        1.0, ge=0, le=60, description="A successful broker ping is trusted this long before a submit pings again"
    )
    admission_group_max: int = Field(
        64, ge=1, le=10_000, description="Most concurrent submits of one tenant stored in one transaction"
    )
    requests_group_id: str = "sluice-intake"
    results_page_max: int = Field(1000, ge=1, le=10_000)
    dashboard_metrics_urls: list[str] = Field(
        default_factory=list,
        description='/metrics URLs whose sluice_consumer_lag the dashboard shows, e.g. ["http://processor:9101/metrics"]',
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
    kinds: KindSettings = Field(default_factory=KindSettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
    flow: FlowSettings = Field(default_factory=FlowSettings)
