"""Waiting for an outcome with a deadline, never a bare sleep."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Call probe until it returns something other than None; TimeoutError at the deadline."""
    async with asyncio.timeout(timeout):
        while (value := await probe()) is None:
            await asyncio.sleep(interval)  # poll interval inside a deadline, not a guess at readiness
        return value


async def let_tasks_run(turns: int = 5) -> None:
    """Give the event loop a few passes, so tasks started so far run up to where they wait (for code with no I/O
    of its own, whose next step the test then triggers: deterministic, unlike a sleep)."""
    for _ in range(turns):
        await asyncio.sleep(0)
