"""PostgreSQL adapter: the pool, JSON codecs and versioned migrations safe to run from many replicas."""

import logging
from importlib.resources import files

import asyncpg
import msgspec
import orjson

from shared.config import PostgresSettings
from shared.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_LOCK_ID = 0x51_1C_E0_01
"""Advisory lock key held while migrating, so concurrent start-ups apply each file exactly once."""

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    TimeoutError,
)
"""Errors that mean "the database is not there right now" rather than "the statement is wrong"."""


JSONB_BINARY_VERSION = b"\x01"


def _jsonb_encode(value: object) -> bytes:
    """A value as jsonb; raw JSON (``msgspec.Raw``, as results arrive off the wire) is passed on as it is."""
    if type(value) is msgspec.Raw:
        encoded = JSONB_BINARY_VERSION + value
        if b"\\u0000" not in encoded:
            return encoded
        value = msgspec.json.decode(value)
    encoded = orjson.dumps(value)
    if b"\\u0000" in encoded:  # jsonb cannot hold NUL characters at all
        encoded = orjson.dumps(without_nul(value))
    return JSONB_BINARY_VERSION + encoded


def without_nul(value: object) -> object:
    """The value with every NUL character in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(item) for item in value]
    return value


def _jsonb_decode(data: bytes) -> object:
    return orjson.loads(data[1:])


async def _init_connection(connection: asyncpg.Connection) -> None:
    # Binary codecs, so COPY (which speaks binary) can carry JSON columns too.
    await connection.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )
    await connection.set_type_codec(
        "json", encoder=orjson.dumps, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )


async def _returned_as_is(connection: asyncpg.Connection) -> None:
    """A released connection goes back to the pool without asyncpg's reset query (a round trip per release,
    several per small job): pooled connections hold no session state. Session locks and LISTEN are held only
    by the dispatcher, which resets its connection itself (``connection.reset()``) before giving it back, and
    by connections of their own; an unfinished transaction is still rolled back by asyncpg."""


PLANNED_EACH_RUN = {"plan_cache_mode": "force_custom_plan"}
"""Every statement is planned for its own arguments. After five runs of a prepared statement PostgreSQL may keep
a generic plan, and one made while the statistics said the tables were all but empty (a fresh database, or right
after a big job drained) scans them once they have grown: the dispatcher's housekeeping and the benchmark's poll
of its jobs' status became orders of magnitude slower than when planned each time. Planning these statements costs
far less than such a scan (figures: docs/performance.md)."""


async def open_pool(settings: PostgresSettings) -> asyncpg.Pool:
    try:
        return await asyncpg.create_pool(
            settings.url,
            server_settings=PLANNED_EACH_RUN,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            command_timeout=settings.command_timeout_s,
            init=_init_connection,
            reset=_returned_as_is,
        )
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) for every migration shipped with Sluice, in order."""
    folder = files("shared.migrations")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text()) for name in names]


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Apply the migrations this database lacks, in one transaction under an advisory lock; returns them."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATIONS_LOCK_ID)
        await connection.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
        new = [(version, sql) for version, sql in migration_files() if version not in applied]
        for version, sql in new:
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            log.info("applied migration %s", version)
        return [version for version, _ in new]
