"""Scheduler's settings: how often it sweeps, and the deadlines, stall window and retention it enforces."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import KafkaSettings, OtelSettings, PostgresSettings, StartupSettings
from shared.eventloop import LOOP_DESCRIPTION, EventLoop
from shared.records import DEFAULT_JOB_TIMEOUT_S, MAX_JOB_TIMEOUT_S, MIN_JOB_TIMEOUT_S


class RescanSettings(BaseSettings):
    """How the scheduler decides and emits rescans of watched items."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_RESCAN_", frozen=True, extra="ignore")

    tick_s: float = Field(1.0, gt=0, le=3600, description="Seconds between rescan planning rounds")
    batch_items: int = Field(5000, ge=1, le=1_000_000, description="Due items decided per transaction")
    max_items_per_trigger: int = Field(
        1000, ge=1, le=10_000, description="Items per RescanRequested; a larger due group is split"
    )
    emit_batch: int = Field(100, ge=1, le=10_000, description="Outbox rescans published per transaction")
    stats_interval_s: float = Field(30.0, ge=0, le=86_400, description="Seconds between per-tenant statistics")
    history_days: float = Field(7.0, gt=0, le=365, description="Sent rescans stay listed this long (GET .../rescans)")
    triggers_group_id: str = Field("sluice-scheduler-triggers", description="Group of the <prefix>.triggers topic")
    clock_file: str | None = Field(
        None, description="Tests and simulations: read the current time (ISO 8601) from this file, not the clock"
    )


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
    event_loop: EventLoop = Field("uvloop", description=LOOP_DESCRIPTION)
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of /metrics, /healthz and /readyz; 0 = off")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics port binds")

    rescan: RescanSettings = Field(default_factory=RescanSettings)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
