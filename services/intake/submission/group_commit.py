"""GroupedAdmissions: concurrent submits of one tenant share one admission transaction (group commit).

Every admission of a tenant takes the tenant's lock and holds it to its commit, so one tenant's submits ran
one at a time, each paying its own round trips and commit flush, which capped a tenant's submit rate. Here
the first submit of a tenant starts a round; submits arriving while a round runs wait for the next one, which
registers them all in one statement (``AdmissionStore.register_group``). Each caller still answers only
after the commit that stored its job, and gets its own outcome (created, existing, or its refusal).

Up to ``max_rounds`` rounds of a tenant are in flight: the next one's statement already waits at the tenant's
lock in the database while the one before commits, instead of being sent only once intake has seen that commit
(on a busy box, intake waited milliseconds to be scheduled for each hand-over).
"""

import asyncio
from dataclasses import dataclass, field

from shared.stores.admission import AdmissionStore, GroupEntry, Registered


@dataclass
class _Waiting:
    entry: GroupEntry
    outcome: asyncio.Future[Registered] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupedAdmissions:
    def __init__(self, store: AdmissionStore, max_group: int, max_rounds: int = 2) -> None:
        self._store, self._max_group, self._max_rounds = store, max_group, max_rounds
        self._queued: dict[str, list[_Waiting]] = {}
        self._rounds: dict[str, set[asyncio.Task[None]]] = {}

    async def register(self, entry: GroupEntry) -> Registered:
        """The job's outcome once its group is committed; a database error is raised to every caller of the group.
        A caller that goes away meanwhile does not withdraw its job (it may be stored; the Idempotency-Key finds it)."""
        tenant = entry.job.tenant
        waiting = _Waiting(entry)
        self._queued.setdefault(tenant, []).append(waiting)
        rounds = self._rounds.setdefault(tenant, set())
        if len(rounds) < self._max_rounds:
            rounds.add(asyncio.create_task(self._run_rounds(tenant)))
        return await asyncio.shield(waiting.outcome)

    async def _run_rounds(self, tenant: str) -> None:
        try:
            while queued := self._queued.get(tenant):
                group, rest = queued[: self._max_group], queued[self._max_group :]
                if rest:
                    self._queued[tenant] = rest
                else:
                    del self._queued[tenant]
                try:
                    outcomes = await self._store.register_group(tenant, [w.entry for w in group])
                except BaseException as exc:  # every caller of the group sees it (cancellation included)
                    for waiting in group:
                        if not waiting.outcome.done():
                            waiting.outcome.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for waiting, outcome in zip(group, outcomes, strict=True):
                    waiting.outcome.set_result(outcome)
        finally:
            rounds = self._rounds[tenant]
            rounds.discard(asyncio.current_task())
            if not rounds:
                del self._rounds[tenant]
                for waiting in self._queued.pop(tenant, []):  # only when the rounds were cancelled (shutdown)
                    waiting.outcome.cancel()
