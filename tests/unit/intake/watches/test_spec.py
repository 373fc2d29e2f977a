"""The ``rescan`` field: durations, modes, cron and what each becomes."""

import pytest
from pydantic import ValidationError

from services.intake.watches.spec import RescanSpec


@pytest.mark.parametrize(("given", "seconds"), [(90, 90), ("90s", 90), ("15m", 900), ("6h", 21_600), ("2d", 172_800)])
def test_an_interval_is_seconds_or_a_duration_string(given: object, seconds: float) -> None:
    assert RescanSpec(mode="periodic", interval=given).config().interval_s == seconds


def test_defaults_per_mode() -> None:
    assert RescanSpec(mode="periodic").config().interval_s == 86_400
    adaptive = RescanSpec(mode="adaptive").config()
    assert (adaptive.interval_s, adaptive.min_interval_s, adaptive.max_interval_s) == (None, 3600, 604_800)
    sampled = RescanSpec(mode="sampled").config()
    assert (sampled.interval_s, sampled.sample_fraction, sampled.change_threshold) == (86_400, 0.1, 0.05)
    assert RescanSpec(mode="event").config().debounce_s == 10


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mode": "hourly"}, "mode"),
        ({"mode": "periodic", "interval": "soon"}, "duration"),
        ({"mode": "periodic", "interval": 0}, "greater than or equal"),
        ({"mode": "periodic", "cron": "every day"}, "cron"),
        ({"mode": "adaptive", "cron": "0 * * * *"}, "periodic only"),
        ({"mode": "periodic", "cron": "0 * * * *", "interval": "1h"}, "not both"),
        ({"mode": "adaptive", "min_interval": "2d", "max_interval": "1d"}, "min_interval"),
        ({"mode": "sampled", "sample": 0}, "greater than 0"),
        ({"mode": "sampled", "threshold": 1}, "less than 1"),
        ({"mode": "periodic", "every": "1h"}, "Extra inputs"),
    ],
)
def test_an_invalid_rescan_is_refused_with_the_reason(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RescanSpec.model_validate(spec)
