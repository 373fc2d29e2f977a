import asyncio

import asyncpg

from shared.config import PostgresSettings
from shared.postgres import apply_migrations, migration_files, open_pool


async def _versions(pool: asyncpg.Pool) -> list[str]:
    return [row["version"] for row in await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")]


async def test_concurrent_startups_apply_each_migration_exactly_once(database_url):
    shipped = [version for version, _ in migration_files()]
    assert shipped, "no migrations shipped"
    pools = [await open_pool(PostgresSettings(url=database_url, pool_min=1, pool_max=2)) for _ in range(4)]
    try:
        applied = await asyncio.wait_for(asyncio.gather(*(apply_migrations(pool) for pool in pools)), timeout=60)

        assert sorted(applied, key=len) == [[], [], [], shipped]
        assert await _versions(pools[0]) == shipped
        tables = {
            row["tablename"]
            for row in await pools[0].fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"jobs", "item_results", "schema_migrations"} <= tables
    finally:
        await asyncio.gather(*(pool.close() for pool in pools))


async def test_running_migrations_again_applies_nothing(database_url):
    pool = await open_pool(PostgresSettings(url=database_url))
    try:
        first = await apply_migrations(pool)
        second = await apply_migrations(pool)

        assert first == [version for version, _ in migration_files()]
        assert second == []
        assert await _versions(pool) == first
    finally:
        await pool.close()


async def test_backlog_payloads_are_not_compressed_with_pglz(db):
    """lz4 where the server has it, else stored as they are (admissions wait on the compression)."""
    row = await db.fetchrow(
        """SELECT attcompression::text AS compression, attstorage::text AS storage FROM pg_attribute
           WHERE attrelid = 'task_backlog'::regclass AND attname = 'payload'"""
    )
    assert (row["compression"], row["storage"]) in {("l", "x"), ("", "e")}, dict(row)
