"""API keys answered from memory: a revocation by any writer takes effect once PostgreSQL's notice arrives, and
without a live notice connection every lookup asks PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from services.intake.tenancy.keys import APPLICATION_NAME, KeyCache, listening_connection
from shared.stores.tenants import TenantStore
from tests.support.poll import eventually


async def _listening(cache: KeyCache, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> asyncio.Task[None]:
    task = asyncio.create_task(cache.listen(connect))
    await eventually(lambda: _true_or_none(cache.listening), timeout=10)
    return task


async def _true_or_none(value: bool) -> bool | None:
    return True if value else None


@pytest.fixture
async def store(db: asyncpg.Pool) -> AsyncIterator[TenantStore]:
    yield TenantStore(db)


async def test_a_key_revoked_with_plain_sql_stops_working_once_the_notice_arrives(store, db, database_url):
    key = await store.create("acme")
    cache = KeyCache(store)
    task = await _listening(cache, lambda: listening_connection(database_url))
    try:
        assert await cache.authenticate(key.token) == "acme"
        assert await cache.authenticate(key.token) == "acme"  # now from memory
        await db.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant = 'acme'")

        async def refused() -> bool | None:
            return True if await cache.authenticate(key.token) is None else None

        await eventually(refused, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_rotated_tenants_old_key_is_refused_and_the_new_one_answered(store, database_url):
    old = await store.create("acme")
    cache = KeyCache(store)
    task = await _listening(cache, lambda: listening_connection(database_url))
    try:
        assert await cache.authenticate(old.token) == "acme"
        new = await store.rotate("acme")

        async def old_refused() -> bool | None:
            return True if await cache.authenticate(old.token) is None else None

        await eventually(old_refused, timeout=10)
        assert await cache.authenticate(new.token) == "acme"
        assert await cache.authenticate(new.token.replace(new.token[-4:], "AAAA")) is None  # same id, wrong secret
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_without_a_notice_connection_a_revocation_takes_effect_on_the_next_request(store):
    key = await store.create("acme")
    cache = KeyCache(store)
    assert not cache.listening
    assert await cache.authenticate(key.token) == "acme"
    await store.revoke("acme")
    assert await cache.authenticate(key.token) is None


async def test_once_the_notice_connection_is_lost_every_lookup_asks_postgresql_again(store, db, database_url):
    key = await store.create("acme")
    connects = 0

    async def connect_once() -> asyncpg.Connection:
        nonlocal connects
        connects += 1
        if connects > 1:
            raise OSError("PostgreSQL unreachable")  # stays lost after the first connection
        return await listening_connection(database_url)

    cache = KeyCache(store)
    task = await _listening(cache, connect_once)
    try:
        assert await cache.authenticate(key.token) == "acme"
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 "
            "AND datname = current_database()",
            APPLICATION_NAME,
        )
        await eventually(lambda: _true_or_none(not cache.listening), timeout=10)
        await store.revoke("acme")
        assert await cache.authenticate(key.token) is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
