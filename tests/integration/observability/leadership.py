"""Taking a session advisory lock away from the connection holding it, as a failover does, with the test next."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from tests.support.poll import eventually

_HOLDER = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted"
_QUEUED = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND pid = $2 AND NOT granted"


@contextlib.asynccontextmanager
async def lock_taken_from_holder(database_url: str, lock_id: int) -> AsyncIterator[None]:
    """Queue for ``lock_id``, end the holder's connection (pg_terminate_backend) and hold the lock, which PostgreSQL
    grants to the queued request before any later try, until the block ends."""
    taker = await asyncpg.connect(database_url)
    observer = await asyncpg.connect(database_url)
    try:
        taking = asyncio.create_task(taker.execute("SELECT pg_advisory_lock($1)", lock_id))

        async def queued() -> bool | None:
            return True if await observer.fetchval(_QUEUED, lock_id, taker.get_server_pid()) else None

        await eventually(queued, timeout=10)
        holder = await observer.fetchval(_HOLDER, lock_id)
        assert holder is not None, "nobody held the lock"
        assert await observer.fetchval("SELECT pg_terminate_backend($1)", holder)
        await asyncio.wait_for(taking, timeout=10)
        yield
    finally:
        await observer.close()
        await taker.close()  # releases the lock
