"""Pure rules of the scheduler: when a sweep is due, what retention keeps, and what a sweep reports."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.records import PurgeOutcome, SweepOutcome


@dataclass(frozen=True)
class SweepPolicy:
    """What one sweep enforces (built from the settings)."""

    job_timeout_s: float
    stall_window_s: float
    retention_days: float
    purge_chunk_rows: int


def retention_cutoff(now: datetime, retention_days: float) -> datetime:
    """Jobs finished before this instant are purged with their results."""
    return now - timedelta(days=retention_days)


def sweep_summary(outcome: SweepOutcome, purged: PurgeOutcome) -> str | None:
    """One log line for a sweep that changed something; None for a quiet one."""
    parts = []
    if outcome.timed_out:
        unfinished = sum(job.unfinished for job in outcome.timed_out)
        parts.append(f"timed out {len(outcome.timed_out)} jobs ({unfinished} items unfinished)")
    if outcome.newly_stalled:
        parts.append(f"{len(outcome.newly_stalled)} newly stalled")
    if outcome.unstalled:
        parts.append(f"{outcome.unstalled} no longer stalled")
    if purged.jobs or purged.results:
        parts.append(f"purged {purged.jobs} jobs and {purged.results} results")
    return "; ".join(parts) or None
