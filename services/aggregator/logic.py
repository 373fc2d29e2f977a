"""Pure rules of the aggregator: which events a write produces, and progress throttling."""

from collections import OrderedDict
from collections.abc import Iterable

from shared.records import JobState
from sluice.contracts.events import JobCancelled, JobCompleted, JobFailed, JobProgressed, JobStatus


def lifecycle_event(state: JobState) -> JobCompleted | JobFailed | JobCancelled:
    """The job-events message announcing that a job reached a terminal status."""
    common = {"tenant": state.tenant, "job_id": state.job_id, "counts": state.counts}
    if state.status is JobStatus.CANCELLED:
        return JobCancelled(**common, reason=state.error or "cancelled")
    if state.status is JobStatus.FAILED:
        return JobFailed(**common, reason=state.error or "failed")
    if state.status in (JobStatus.COMPLETED, JobStatus.PARTIALLY_FAILED):
        return JobCompleted(**common, status=state.status)
    raise ValueError(f"job {state.job_id} is {state.status}, not terminal")


def progress_event(state: JobState) -> JobProgressed:
    counts = state.counts
    percent = 100.0 if counts.total == 0 else round(100.0 * counts.done / counts.total, 2)
    return JobProgressed(tenant=state.tenant, job_id=state.job_id, counts=counts, percent=min(percent, 100.0))


class ProgressThrottle:
    """Lets through at most one progress event per job per interval; remembers at most ``capacity`` jobs."""

    def __init__(self, interval_s: float, capacity: int = 10_000) -> None:
        self._interval = interval_s
        self._capacity = capacity
        self._last: OrderedDict[object, float] = OrderedDict()

    def due(self, states: Iterable[JobState], now: float) -> list[JobState]:
        chosen = []
        for state in states:
            if state.status.is_terminal:
                self._last.pop(state.job_id, None)
                continue
            last = self._last.get(state.job_id)
            if last is None or now - last >= self._interval:
                chosen.append(state)
                self._last[state.job_id] = now
                self._last.move_to_end(state.job_id)
        while len(self._last) > self._capacity:
            self._last.popitem(last=False)
        return chosen


def backoff_delay(attempt: int, base_s: float = 0.5, cap_s: float = 5.0) -> float:
    """Exponential back-off for the n-th failed attempt (1-based), capped."""
    return min(cap_s, base_s * 2 ** (attempt - 1))
