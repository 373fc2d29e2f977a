"""Which recorded messages an operator command takes: pure rules over a message's coordinates."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from services.ops.streams.errors import OpsError


@dataclass(frozen=True)
class Record:
    """One message as read back from a topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Selection:
    """A job (by message key), a time range [since, until) by message timestamp, and/or an offset range
    [from_offset, to_offset) applied to every chosen partition. Unset parts select everything."""

    job_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    partitions: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since >= self.until:
            raise OpsError("--since must be before --until")
        if self.from_offset is not None and self.to_offset is not None and self.from_offset >= self.to_offset:
            raise OpsError("--from-offset must be below --to-offset")
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise OpsError("times need a UTC offset, e.g. 2026-11-24T08:00:00+00:00")

    def start_offset(self) -> int:
        return self.from_offset or 0

    def stop_offset(self, end: int) -> int:
        """Where reading a partition whose end is ``end`` stops (exclusive)."""
        return end if self.to_offset is None else min(self.to_offset, end)

    def takes_partition(self, partition: int) -> bool:
        return self.partitions is None or partition in self.partitions

    def takes(self, record: Record) -> bool:
        if self.job_id is not None and record.key != str(self.job_id).encode():
            return False
        if self.since is not None and record.timestamp_ms < _ms(self.since):
            return False
        return not (self.until is not None and record.timestamp_ms >= _ms(self.until))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
