"""Run an async probe from sync code, whether or not the calling thread already runs an event loop."""

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_in_fresh_loop(make_coro: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
    """Run make_coro() on a new loop in a helper thread; TimeoutError after `timeout` seconds."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await make_coro()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack-probe") as pool:
        return pool.submit(asyncio.run, bounded()).result()
