"""Running a service's main coroutine on the event loop its settings name."""

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal

EventLoop = Literal["uvloop", "asyncio"]
LOOP_DESCRIPTION = "Event loop: uvloop (libuv; less CPU per message and query) or asyncio (the standard one)"


def run_service(main: Coroutine[Any, Any, None], loop: EventLoop) -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)
