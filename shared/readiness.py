"""Start-up probes: wait for a dependency with bounded retries, then fail with a message naming it."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.config import StartupSettings
from shared.errors import DependencyUnavailable
from sluice.errors import Refused

log = logging.getLogger(__name__)
T = TypeVar("T")


async def wait_for(dependency: str, probe: Callable[[], Awaitable[T]], settings: StartupSettings) -> T:
    """Call ``probe`` until it succeeds, up to ``settings.attempts`` times, ``settings.delay_s`` apart; a refusal
    (wrong credentials, no permission) is raised at once, since waiting won't change it."""
    last_error: BaseException | None = None
    for attempt in range(1, settings.attempts + 1):
        try:
            return await probe()
        except Refused:
            raise
        except Exception as exc:  # any failure of a probe means "not ready yet"; the last one is reported
            last_error = exc
            log.warning("%s not ready (attempt %d/%d): %s", dependency, attempt, settings.attempts, exc)
            await asyncio.sleep(settings.delay_s)
    raise DependencyUnavailable(dependency, f"not reachable after {settings.attempts} attempts: {last_error}")
