"""The dispatcher's rule, pure: which backlogged batches to release now, by priority, fair share and caps.

Strict priority between classes (high, then normal, then bulk gets what is left: idle capacity). Within a
class, deficit round robin between tenants: each turn a tenant earns ``weight × quantum`` batches of credit
and releases up to its credit; unused credit carries over to its next turn while it stays backlogged, so
over time each backlogged tenant releases batches in proportion to its weight, whatever it queued first.
Every release stays under three caps: the global in-flight window, the tenant's in-flight cap (its plan),
and the kind's in-flight cap. A capped tenant or kind is skipped, never waited on, so others go on.
"""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from sluice.contracts.events import Priority

PRIORITY_ORDER = (Priority.HIGH, Priority.NORMAL, Priority.BULK)

QueueKey = tuple[str, Priority, str]
"""(tenant, priority, kind): one dispatcher queue, served first submitted first."""


@dataclass(frozen=True)
class TenantLimits:
    weight: int
    max_in_flight: int


@dataclass(frozen=True)
class Snapshot:
    """What the backlog holds now: unreleased batches per queue, and batches in flight per tenant and kind."""

    backlog: Mapping[QueueKey, int]
    in_flight: Mapping[tuple[str, str], int]

    def tenant_in_flight(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (tenant, _), count in self.in_flight.items():
            totals[tenant] = totals.get(tenant, 0) + count
        return totals

    def kind_in_flight(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (_, kind), count in self.in_flight.items():
            totals[kind] = totals.get(kind, 0) + count
        return totals


@dataclass
class RoundRobin:
    """Deficit round-robin state of one priority class; kept by the dispatcher between ticks."""

    order: deque[str] = field(default_factory=deque)
    deficit: dict[str, int] = field(default_factory=dict)
    kind_turn: dict[str, int] = field(default_factory=dict)


@dataclass
class FairShare:
    """The allocation rule plus its memory (one RoundRobin per class)."""

    window: int
    kind_caps: Mapping[str, int] = field(default_factory=dict)
    quantum: int = 1
    classes: dict[Priority, RoundRobin] = field(default_factory=lambda: {p: RoundRobin() for p in PRIORITY_ORDER})

    def allocate(self, snapshot: Snapshot, limits: Mapping[str, TenantLimits]) -> dict[QueueKey, int]:
        """How many batches to release from each queue now (queues not listed get none)."""
        free = self.window - sum(snapshot.in_flight.values())
        in_flight = snapshot.tenant_in_flight()
        tenant_room = {tenant: limit.max_in_flight - in_flight.get(tenant, 0) for tenant, limit in limits.items()}
        kind_used = snapshot.kind_in_flight()
        kind_room = {kind: cap - kind_used.get(kind, 0) for kind, cap in self.kind_caps.items()}
        backlog = {key: count for key, count in snapshot.backlog.items() if count > 0}
        grants: dict[QueueKey, int] = {}
        for priority in PRIORITY_ORDER:
            if free <= 0:
                break
            queues = {key: count for key, count in backlog.items() if key[1] is priority}
            free -= self._serve_class(self.classes[priority], queues, limits, free, tenant_room, kind_room, grants)
        return grants

    def _serve_class(
        self,
        rr: RoundRobin,
        queues: dict[QueueKey, int],
        limits: Mapping[str, TenantLimits],
        free: int,
        tenant_room: dict[str, int],
        kind_room: dict[str, int],
        grants: dict[QueueKey, int],
    ) -> int:
        """One class's deficit round robin; mutates the rooms and grants; returns the batches granted."""
        by_tenant: dict[str, list[QueueKey]] = {}
        for key in sorted(queues):
            by_tenant.setdefault(key[0], []).append(key)
        for tenant in by_tenant:
            if tenant not in rr.order:
                rr.order.append(tenant)
        for tenant in [t for t in rr.order if t not in by_tenant]:  # no backlog: forget it (classic DRR)
            rr.order.remove(tenant)
            rr.deficit.pop(tenant, None)
        granted = 0
        idle_turns = 0
        while free > granted and idle_turns < len(rr.order):
            tenant = rr.order[0]
            rr.order.rotate(-1)
            room = min(tenant_room.get(tenant, 0), free - granted)
            open_queues = [k for k in by_tenant[tenant] if queues[k] > 0 and kind_room.get(k[2], room) > 0]
            if room <= 0 or not open_queues:
                rr.deficit[tenant] = 0  # capped or drained: no credit hoarded while it cannot use it
                idle_turns += 1
                continue
            idle_turns = 0
            credit = rr.deficit.get(tenant, 0) + limits[tenant].weight * self.quantum
            take = min(credit, room)
            taken = self._take(rr, tenant, open_queues, take, queues, kind_room, grants)
            tenant_room[tenant] = tenant_room.get(tenant, 0) - taken
            rr.deficit[tenant] = credit - taken
            granted += taken
        return granted

    @staticmethod
    def _take(
        rr: RoundRobin,
        tenant: str,
        open_queues: list[QueueKey],
        wanted: int,
        queues: dict[QueueKey, int],
        kind_room: dict[str, int],
        grants: dict[QueueKey, int],
    ) -> int:
        """Up to ``wanted`` batches from the tenant's queues, one at a time, rotating between its kinds."""
        taken = 0
        turn = rr.kind_turn.get(tenant, 0)
        while taken < wanted:
            candidates = [k for k in open_queues if queues[k] > 0 and kind_room.get(k[2], 1) > 0]
            if not candidates:
                break
            key = candidates[turn % len(candidates)]
            turn += 1
            queues[key] -= 1
            if key[2] in kind_room:
                kind_room[key[2]] -= 1
            grants[key] = grants.get(key, 0) + 1
            taken += 1
        rr.kind_turn[tenant] = turn
        return taken
