"""Scheduler's settings: how often it sweeps, and the deadlines, stall window and retention it enforces."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import KafkaSettings, OtelSettings, PostgresSettings, StartupSettings
from shared.stores.sweeps import DEFAULT_JOB_TIMEOUT_S, MAX_JOB_TIMEOUT_S, MIN_JOB_TIMEOUT_S


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_SCHEDULER_", frozen=True, extra="ignore")

    sweep_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Seconds between sweeps (deadlines, stalls, retention)"
    )
    job_timeout_s: float = Field(
        DEFAULT_JOB_TIMEOUT_S,
        ge=MIN_JOB_TIMEOUT_S,
        le=MAX_JOB_TIMEOUT_S,
        description="Deadline of a job without options.job_timeout_s, in seconds from its creation",
    )
    stall_window_s: float = Field(
        300.0, gt=0, le=MAX_JOB_TIMEOUT_S, description="A running job with no new result for this long is stalled"
    )
    result_retention_days: float = Field(
        30.0, gt=0, le=3650, description="Jobs finished longer ago than this are deleted with their results"
    )
    purge_chunk_rows: int = Field(10_000, ge=1, le=1_000_000, description="Result rows deleted per statement")
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of /metrics, /healthz and /readyz; 0 = off")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics port binds")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
