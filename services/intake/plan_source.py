"""Where flow control reads a tenant's plan. One seam: tenancy swaps in its per-tenant `plan_for`."""

from shared.plans import Plan, PlanDefaults


class PlanSource:
    """Every tenant's plan; for now the configured defaults (SLUICE_PLAN_*) for all."""

    def __init__(self, defaults: PlanDefaults) -> None:
        self._defaults = defaults

    async def plan_for(self, tenant: str) -> Plan:
        return self._defaults.plan()
