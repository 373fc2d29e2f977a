"""The pool every service opens: statements planned for their own arguments, also after a connection's reset."""

import asyncpg


async def test_pooled_connections_plan_each_statement_for_its_arguments_even_after_a_reset(db: asyncpg.Pool):
    async with db.acquire() as connection:
        before = await connection.fetchval("SHOW plan_cache_mode")
        await connection.execute("SET plan_cache_mode TO auto")
        await connection.reset()  # what the dispatcher does before giving its connection back
        after = await connection.fetchval("SHOW plan_cache_mode")

    assert (before, after) == ("force_custom_plan", "force_custom_plan")
