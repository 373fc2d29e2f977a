"""How long a consumer's next fetch waits at the broker: short while data comes, longer once it has stopped.

A broker that answers a waiting fetch only when the wait ends (the dev broker, Tansu) turns the wait into
latency, so items-path consumers wait briefly; but every empty fetch costs that broker work in proportion to
the partitions it names, and an idle stack of them kept the broker busy doing nothing. A broker that answers as soon
as data arrives (Apache Kafka) loses no latency to a longer wait, only idle requests.
"""

from dataclasses import dataclass, field

IDLE_PATIENCE_S = 1.0
"""Fetches keep the short wait until this long has passed without data: a short lull between a job's
batches, or between one job and the next, costs nothing."""


@dataclass
class IdleFetchWait:
    """The wait for the next fetch, told the outcome of each one: ``base_ms`` while fetches bring records;
    after ``patience_s`` of empty fetches, doubled with each further empty one up to ``max_ms``; back to
    ``base_ms`` with the first records."""

    base_ms: int
    max_ms: int
    patience_s: float = IDLE_PATIENCE_S
    current_ms: int = field(init=False)
    _empty_since: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.base_ms <= self.max_ms:
            raise ValueError(f"need 1 <= base_ms ({self.base_ms}) <= max_ms ({self.max_ms})")
        self.current_ms = self.base_ms

    def after_fetch(self, got_records: bool, now: float) -> int:
        """The wait for the next fetch, given whether this one (ended at ``now``, monotonic seconds) brought
        records."""
        if got_records:
            self._empty_since = None
            self.current_ms = self.base_ms
        elif self._empty_since is None:
            self._empty_since = now
        elif now - self._empty_since >= self.patience_s:
            self.current_ms = min(self.max_ms, self.current_ms * 2)
        return self.current_ms
