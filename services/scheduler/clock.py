"""The scheduler's clock: the system's, or (tests, simulations) a time read from a file someone else moves."""

from datetime import datetime
from pathlib import Path

from sluice.contracts.events import utc_now
from sluice.errors import SluiceError


class ClockUnreadable(SluiceError):
    """The clock file is missing or does not hold an ISO 8601 time with a zone."""


class SystemClock:
    def now(self) -> datetime:
        return utc_now()


class FileClock:
    """Reads the time from a file at every call, so a test moves time by rewriting it (no sleeps)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def now(self) -> datetime:
        try:
            moment = datetime.fromisoformat(self._path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise ClockUnreadable(f"clock file {self._path}: {exc}") from exc
        if moment.tzinfo is None:
            raise ClockUnreadable(f"clock file {self._path}: {moment.isoformat()} has no time zone")
        return moment


Clock = SystemClock | FileClock


def clock_from(clock_file: str | None) -> Clock:
    return FileClock(Path(clock_file)) if clock_file else SystemClock()
