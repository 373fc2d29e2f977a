"""KeyCache: an API key verified once is answered from memory until PostgreSQL announces that it changed.

One indexed query per request was a visible share of intake's CPU under steady small submits (the query, and the
pool's release with its reset round trip). Every revoked or deleted key is announced on API_KEYS_CHANNEL when the change
commits, whoever made it (a trigger, migration 010), so a revocation or rotation takes effect here as soon as the
notice arrives. Only keys found working are kept; an unknown or revoked key is looked up every time.

The memory is trusted only while the listening connection is known to be alive: it is probed every HEARTBEAT_S,
and a notice sent before a probe's answer arrives before it. Lost (or not yet confirmed), nothing is kept and every
request queries, as before; so a silent network failure delays a revocation by at most two probes.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from shared.api_keys import digest_matches, key_id_of
from shared.postgres import CONNECTION_ERRORS
from shared.stores.tenants import API_KEYS_CHANNEL, TenantStore

log = logging.getLogger(__name__)

MAX_CACHED_KEYS = 10_000
"""Keys kept at once; beyond it the memory starts over (a key costs one query to learn again)."""
HEARTBEAT_S = 2.0
RECONNECT_S = 1.0
APPLICATION_NAME = "sluice-intake-api-keys"
"""The listening connection's name in pg_stat_activity."""


class KeyCache:
    """The tenant behind an API key; one per intake, its ``listen`` task owned by the lifespan."""

    def __init__(
        self, store: TenantStore, max_keys: int = MAX_CACHED_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store, self._max_keys, self._clock = store, max_keys, clock
        self._keys: dict[str, tuple[str, bytes]] = {}
        self._generation = 0
        """Counts forgettings, so a lookup that a notice overtook is not kept."""
        self._trusted_until = 0.0

    @property
    def listening(self) -> bool:
        """Whether verified keys are answered from memory now."""
        return self._clock() < self._trusted_until

    async def authenticate(self, token: str) -> str | None:
        """The tenant a key belongs to, or None for a malformed, unknown or revoked key."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        trusted = self.listening
        found = self._keys.get(key_id) if trusted else None
        if found is None:
            generation = self._generation
            found = await self._store.active_key(key_id)
            if found is None:
                return None
            if trusted and generation == self._generation:
                if len(self._keys) >= self._max_keys:
                    self._keys.clear()
                self._keys[key_id] = found
        tenant, digest = found
        return tenant if digest_matches(token, digest) else None

    def forget(self, key_id: str | None = None) -> None:
        """Drop one key (None: every key); lookups under way are not kept either."""
        self._generation += 1
        if key_id is None:
            self._keys.clear()
        else:
            self._keys.pop(key_id, None)

    def _on_notice(self, connection: object, pid: int, channel: str, key_id: str) -> None:
        self.forget(key_id)

    async def listen(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        """Listen on API_KEYS_CHANNEL until cancelled, reconnecting after a loss; the memory is used only while
        the connection answers its probes."""
        while True:
            try:
                connection = await connect()
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("API key notices unavailable (%s); every request queries PostgreSQL", exc)
                await asyncio.sleep(RECONNECT_S)
                continue
            try:
                await self._listen_on(connection)
                log.warning("API key notices lost; every request queries PostgreSQL until they are back")
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("API key notices lost (%s); every request queries PostgreSQL until they are back", exc)
            finally:
                connection.terminate()
            await asyncio.sleep(RECONNECT_S)

    async def _listen_on(self, connection: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: self._distrust(lost))
        try:
            await connection.add_listener(API_KEYS_CHANNEL, self._on_notice)
            self.forget()
            await self._probe_until_lost(connection, lost)
        finally:
            self._distrust(lost)

    def _distrust(self, lost: asyncio.Event) -> None:
        self._trusted_until = 0.0
        self.forget()
        lost.set()

    async def _probe_until_lost(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        while not lost.is_set():
            started = self._clock()
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    await connection.fetchval("SELECT 1")
            except TimeoutError:
                return
            if lost.is_set():
                return
            self._trusted_until = started + 2 * HEARTBEAT_S
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    await lost.wait()
            except TimeoutError:
                pass


async def listening_connection(url: str) -> asyncpg.Connection:
    """A connection of its own for the notices (a pooled one is reset, UNLISTEN included, when released)."""
    return await asyncpg.connect(url, timeout=10, server_settings={"application_name": APPLICATION_NAME})
