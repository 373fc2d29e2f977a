"""What intake's lifespan opens and its routes and subscriber use; one per app."""

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from services.intake.accept import JobAcceptor
from services.intake.settings import IntakeSettings
from shared.kinds import Kind
from shared.redis import CancellationFlags
from shared.stores.admission import AdmissionStore
from shared.stores.jobs import JobStore


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
    admissions: AdmissionStore | None = None
