"""What a watch request looks like (``rescan`` on submit, POST/PATCH /v1/watches) and how it becomes a config."""

import re
from typing import Annotated, Literal

from croniter import croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from shared.stores.watches import WatchConfig

DAY_S = 86_400.0
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 366 * DAY_S
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: object) -> object:
    """Seconds as a number, or a string like "90s", "15m", "6h", "7d", "2w"."""
    if isinstance(value, str):
        match = DURATION.match(value)
        if not match:
            raise ValueError('a duration is seconds or a string like "90s", "15m", "6h", "7d"')
        return float(match.group(1)) * UNITS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)]
Mode = Literal["periodic", "adaptive", "event", "sampled"]


class RescanSpec(BaseModel):
    """How a watch's items are rescanned; defaults per mode are documented in docs/rescans.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    interval: Duration | None = Field(None, description="periodic and sampled: time between rescans (default 1d)")
    cron: str | None = Field(None, max_length=200, description="periodic: a 5-field cron expression (UTC)")
    min_interval: Duration | None = Field(None, description="adaptive: the shortest interval (default 1h)")
    max_interval: Duration | None = Field(None, description="adaptive: the longest interval (default 7d)")
    sample: float = Field(0.1, gt=0, le=1, description="sampled: fraction of the group rescanned first")
    threshold: float = Field(0.05, ge=0, lt=1, description="sampled: change rate above which the group escalates")
    sample_timeout: Duration = Field(3600.0, description="sampled: decide with the results in after this long")
    debounce: float = Field(10.0, ge=0, le=DAY_S, description="event triggers within this window cause one rescan")
    tags: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> "RescanSpec":
        if self.cron is not None:
            if self.mode != "periodic":
                raise ValueError("cron applies to mode periodic only")
            if self.interval is not None:
                raise ValueError("give interval or cron, not both")
            if not croniter.is_valid(self.cron) or len(self.cron.split()) != 5:
                raise ValueError(f"cron {self.cron!r} is not a valid 5-field cron expression")
        if self.mode == "adaptive" and self.min_interval_s > self.max_interval_s:
            raise ValueError("min_interval must not exceed max_interval")
        return self

    @property
    def min_interval_s(self) -> float:
        return self.min_interval or 3600.0

    @property
    def max_interval_s(self) -> float:
        return self.max_interval or 7 * DAY_S

    def config(self) -> WatchConfig:
        adaptive = self.mode == "adaptive"
        return WatchConfig(
            mode=self.mode,
            interval_s=None if adaptive or self.cron else (self.interval or DAY_S),
            min_interval_s=self.min_interval_s if adaptive else None,
            max_interval_s=self.max_interval_s if adaptive else None,
            cron=self.cron,
            sample_fraction=self.sample,
            change_threshold=self.threshold,
            sample_timeout_s=self.sample_timeout,
            debounce_s=self.debounce,
            tags=tuple(self.tags),
        )


def spec_of(config: WatchConfig) -> dict[str, object]:
    """A watch's config as the request fields that would recreate it."""
    spec: dict[str, object] = {"mode": config.mode, "tags": list(config.tags), "debounce": config.debounce_s}
    if config.cron:
        spec["cron"] = config.cron
    elif config.interval_s is not None:
        spec["interval"] = config.interval_s
    if config.mode == "adaptive":
        spec |= {"min_interval": config.min_interval_s, "max_interval": config.max_interval_s}
    if config.mode == "sampled":
        spec |= {
            "sample": config.sample_fraction,
            "threshold": config.change_threshold,
            "sample_timeout": config.sample_timeout_s,
        }
    return spec
