"""The scheduler's fleet-wide gauges: jobs by status, stalled jobs and the per-tenant rescan statistics.

Every replica sweeps (each sweep under its own transaction lock) and plans rescans, but these gauges count rows
every replica sees alike: exported by both, a sum over pods would count each job twice. So one replica exports
them, the holder of a session advisory lock (the intake dispatcher's election): it takes the lock on a pooled
connection and, every sweep interval, refreshes the job counts and checks that connection still answers. When it
does not (crash, network, database restart) or the scheduler stops, the replica clears the gauges (absent, not
frozen at their last values) and a stand-by, trying every sweep interval, takes over.
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.metrics import SluiceMetrics
from shared.postgres import CONNECTION_ERRORS
from shared.stores.job_stats import JobStats

log = logging.getLogger(__name__)

GAUGES_LOCK_ID = 0x51_1C_E0_08
"""Session advisory lock whose holder exports the scheduler's fleet-wide gauges."""


def rescan_stats(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per tenant, the values of the sluice_rescan_* gauges from the scheduler's statistics rows."""
    stats = {}
    for row in rows:
        values = {name: int(row[name]) for name in ("watched_items", "due_next_hour", "due_next_day", "scans_issued")}
        values["scans_saved"] = int(row["daily_equivalent"]) - values["scans_issued"]
        stats[str(row["tenant"])] = values
    return stats


@dataclass
class FleetGauges:
    """Exports the fleet-wide gauges while this replica holds GAUGES_LOCK_ID (see the module docstring)."""

    pool: asyncpg.Pool
    metrics: SluiceMetrics
    interval_s: float
    _rescan_stats: dict[str, dict[str, int]] = field(default_factory=dict, init=False)
    _leading: bool = field(default=False, init=False)

    def update_rescan_stats(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """The rescan loop's latest statistics: every replica computes them, only the leader exports them."""
        self._rescan_stats = rescan_stats(rows)
        if self._leading:
            self.metrics.set_rescan_stats(self._rescan_stats)

    async def run_forever(self) -> None:
        """Lead when the lock is free; on a database error, stop exporting and try again after the interval."""
        while True:
            try:
                async with self.pool.acquire() as connection:
                    if await connection.fetchval("SELECT pg_try_advisory_lock($1)", GAUGES_LOCK_ID):
                        log.info("this scheduler now exports the fleet-wide gauges (jobs by status, rescan stats)")
                        try:
                            await self._lead(connection)
                        finally:
                            self._step_down()
                            if not connection.is_closed():
                                # The pool does not reset connections (shared/postgres.py): the lock goes here.
                                await connection.reset()
            except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
                log.warning("stopped exporting the fleet-wide gauges, retrying in %.1fs: %s: %s",
                            self.interval_s, type(exc).__name__, exc)  # fmt: skip
            await asyncio.sleep(self.interval_s)

    async def _lead(self, connection: asyncpg.Connection) -> None:
        stats = JobStats(self.pool)
        while True:
            counts, stalled = await stats.by_status(), await stats.stalled()
            await connection.fetchval("SELECT 1")  # the lock's connection answers: this replica still holds it
            self.metrics.set_job_counts(counts, stalled)
            if not self._leading:
                self._leading = True
                self.metrics.set_rescan_stats(self._rescan_stats)
            await asyncio.sleep(self.interval_s)

    def _step_down(self) -> None:
        self._leading = False
        self.metrics.clear_job_counts()
        self.metrics.clear_rescan_stats()
