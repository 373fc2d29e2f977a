"""Tenants and keys for tests, made through the real TenantStore against a run's database."""

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import JsonValue

from shared.config import PostgresSettings
from shared.postgres import apply_migrations, open_pool
from shared.stores.tenants import TenantStore


@asynccontextmanager
async def tenant_store(database_url: str) -> AsyncIterator[TenantStore]:
    pool = await open_pool(PostgresSettings(url=database_url, pool_min=0, pool_max=1))
    try:
        await apply_migrations(pool)
        yield TenantStore(pool)
    finally:
        await pool.close()


async def issue_key(database_url: str, tenant: str, overrides: dict[str, JsonValue] | None = None) -> str:
    """A working key for the tenant; creates the tenant (with the plan overrides) when it does not exist yet."""
    async with tenant_store(database_url) as store:
        return (await store.key_for(tenant, overrides)).token


def issue_key_sync(database_url: str, tenant: str) -> str:
    """`issue_key` from synchronous code, even while an event loop runs in this thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, issue_key(database_url, tenant)).result(timeout=60)
