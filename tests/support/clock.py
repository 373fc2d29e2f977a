"""A clock the test moves: the scheduler reads the time from this file (SLUICE_RESCAN_CLOCK_FILE)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path


class FakeClock:
    def __init__(self, path: Path, start: datetime = datetime(2030, 1, 1, tzinfo=UTC)) -> None:
        self.path = path
        self.set(start)

    def set(self, moment: datetime) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(moment.isoformat())
        temporary.replace(self.path)  # atomic: the scheduler never reads half a time
        self._now = moment

    def advance(self, by: timedelta) -> datetime:
        self.set(self._now + by)
        return self._now

    @property
    def now(self) -> datetime:
        return self._now
