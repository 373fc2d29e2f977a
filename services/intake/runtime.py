"""What intake's lifespan opens and its routes and subscriber use; one per app."""

from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from services.intake.live.hub import JobEventHub
from services.intake.settings import IntakeSettings
from services.intake.submission.accept import JobAcceptor
from services.intake.tenancy.keys import KeyCache
from services.intake.tenancy.rate_limit import RateLimiter
from shared.kinds import Kind
from shared.metrics import SluiceMetrics
from shared.redis import CancellationFlags
from shared.stores.admission import AdmissionStore
from shared.stores.jobs import JobStore
from shared.stores.tenants import TenantStore
from shared.tenant_plans import TenantPlans


@dataclass
class IntakeRuntime:
    settings: IntakeSettings
    kinds: dict[str, Kind]
    broker: KafkaBroker
    pool: asyncpg.Pool
    redis: aioredis.Redis
    store: JobStore
    acceptor: JobAcceptor
    flags: CancellationFlags
    tenants: TenantStore
    plans: TenantPlans
    rate_limiter: RateLimiter
    hub: JobEventHub = field(kw_only=True)
    metrics: SluiceMetrics = field(kw_only=True)
    admissions: AdmissionStore = field(kw_only=True)
    keys: KeyCache = field(kw_only=True)
