"""The file clock the tests move: it reads the time at every call and refuses a time without a zone."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.scheduler.clock import ClockUnreadable, FileClock, SystemClock, clock_from


def test_the_file_clock_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "now"
    path.write_text("2030-01-01T00:00:00+00:00")
    clock = FileClock(path)
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    path.write_text("2030-01-02T06:00:00+00:00\n")
    assert clock.now() == datetime(2030, 1, 2, 6, tzinfo=UTC)


@pytest.mark.parametrize("content", [None, "tomorrow", "2030-01-01T00:00:00"])
def test_an_unreadable_clock_file_is_a_named_error(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "now"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ClockUnreadable, match=str(path)):
        FileClock(path).now()


def test_without_a_clock_file_the_system_clock_is_used() -> None:
    assert isinstance(clock_from(None), SystemClock)
