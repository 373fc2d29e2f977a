"""Scheduler's settings (the trigger modes arrive with the scheduler issue)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import KafkaSettings, OtelSettings, PostgresSettings, StartupSettings


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_SCHEDULER_", frozen=True, extra="ignore")

    tick_interval_s: float = Field(5.0, gt=0, le=3600)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
