"""TenantPlans: `plan_for(tenant)`, the plan every limit is read from (defaults + named plan + overrides), cached."""

import logging
import time
from collections.abc import Callable

from shared.plans import InvalidPlan, Plan, TenancySettings, resolve_plan
from shared.stores.tenants import TenantStore

log = logging.getLogger(__name__)

MAX_CACHED = 10_000
"""Tenants whose plan is cached at once; beyond it the cache starts over (plans are cheap to re-read)."""


class TenantPlans:
    """Per-tenant plans for admission and fair share; one per service, owned by its lifespan.

    A changed plan takes effect within `plan_cache_ttl_s`. A tenant the store does not know (e.g. one named in
    a Kafka JobRequested event) gets the default plan.
    """

    def __init__(
        self, store: TenantStore, settings: TenancySettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store, self._settings, self._clock = store, settings, clock
        self._named = settings.named_plans()
        self._cache: dict[str, tuple[float, Plan]] = {}

    async def plan_for(self, tenant: str) -> Plan:
        now = self._clock()
        cached = self._cache.get(tenant)
        if cached and cached[0] > now:
            return cached[1]
        plan = await self._read(tenant)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[tenant] = (now + self._settings.plan_cache_ttl_s, plan)
        return plan

    async def _read(self, tenant: str) -> Plan:
        settings = self._settings
        record = await self._store.get(tenant)
        if record is None:
            return settings.defaults.plan()
        try:
            return resolve_plan(settings.defaults, self._named, record.plan, record.plan_overrides)
        except InvalidPlan as exc:
            # The stored plan was valid when set; the named plans in settings changed since. Keep serving.
            log.warning("tenant %s: plan %r no longer resolves (%s); using its overrides on the defaults",
                        tenant, record.plan, exc)  # fmt: skip
            return resolve_plan(settings.defaults, {}, "standard", record.plan_overrides)
