"""TenantStore: tenants, their plan choice and overrides, and their API keys (stored as SHA-256 digests only)."""

import re
from datetime import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict, JsonValue

from shared.api_keys import IssuedKey, digest_matches, key_id_of, new_api_key
from sluice.errors import SluiceError

TENANT_NAME = re.compile(r"[A-Za-z0-9._:-]{1,200}")
API_KEYS_CHANNEL = "sluice_api_keys"
"""NOTIFY channel on which every revoked or deleted API key's id is announced (migration 010)."""


class TenantExists(SluiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"tenant {name!r} already exists")
        self.name = name


class UnknownTenant(SluiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no tenant named {name!r}")
        self.name = name


class InvalidTenantName(SluiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"tenant name {name!r} must be 1-200 characters of letters, digits and . _ : -")
        self.name = name


class TenantRecord(BaseModel):
    """A tenant as stored, with the ids of its keys that still work."""

    model_config = ConfigDict(frozen=True)

    name: str
    plan: str
    plan_overrides: dict[str, JsonValue]
    created_at: datetime
    active_key_ids: list[str]


_SELECT = """
    SELECT t.name, t.plan, t.plan_overrides, t.created_at,
           coalesce(array_agg(k.key_id ORDER BY k.created_at) FILTER (WHERE k.key_id IS NOT NULL), '{}')
               AS active_key_ids
      FROM tenants t LEFT JOIN api_keys k ON k.tenant = t.name AND k.revoked_at IS NULL
"""


class TenantStore:
    """The only code that knows the tenants and api_keys tables."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self, name: str, plan: str = "standard", overrides: dict[str, JsonValue] | None = None
    ) -> IssuedKey:
        """Register a tenant with its first key; the key's secret is returned here and never stored."""
        if not TENANT_NAME.fullmatch(name):
            raise InvalidTenantName(name)
        key = new_api_key()
        async with self._pool.acquire() as connection, connection.transaction():
            inserted = await connection.fetchval(
                """INSERT INTO tenants (name, plan, plan_overrides) VALUES ($1, $2, $3)
                   ON CONFLICT (name) DO NOTHING RETURNING name""",
                name, plan, overrides or {},
            )  # fmt: skip
            if inserted is None:
                raise TenantExists(name)
            await self._insert_key(connection, name, key)
        return key

    async def add_key(self, name: str) -> IssuedKey:
        """One more working key for the tenant, leaving its others valid."""
        key = new_api_key()
        async with self._pool.acquire() as connection, connection.transaction():
            await self._lock_tenant(connection, name)
            await self._insert_key(connection, name, key)
        return key

    async def key_for(self, name: str, overrides: dict[str, JsonValue] | None = None) -> IssuedKey:
        """A new key for the tenant, creating it (with these plan overrides) first if it does not exist."""
        try:
            return await self.add_key(name)
        except UnknownTenant:
            try:
                return await self.create(name, overrides=overrides)
            except TenantExists:  # created concurrently
                return await self.add_key(name)

    async def rotate(self, name: str) -> IssuedKey:
        """A new key for the tenant; every older key stops working in the same transaction."""
        key = new_api_key()
        async with self._pool.acquire() as connection, connection.transaction():
            await self._lock_tenant(connection, name)
            await connection.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE tenant = $1 AND revoked_at IS NULL", name
            )
            await self._insert_key(connection, name, key)
        return key

    async def revoke(self, name: str, key_id: str | None = None) -> list[str]:
        """Revoke one key of the tenant, or all of them; returns the ids revoked now."""
        async with self._pool.acquire() as connection, connection.transaction():
            await self._lock_tenant(connection, name)
            rows = await connection.fetch(
                """UPDATE api_keys SET revoked_at = now()
                    WHERE tenant = $1 AND revoked_at IS NULL AND ($2::text IS NULL OR key_id = $2)
                RETURNING key_id""",
                name, key_id,
            )  # fmt: skip
        return sorted(row["key_id"] for row in rows)

    async def authenticate(self, token: str) -> str | None:
        """The tenant a key belongs to, or None for a malformed, unknown or revoked key (one indexed lookup)."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        found = await self.active_key(key_id)
        if found is None or not digest_matches(token, found[1]):
            return None
        return found[0]

    async def active_key(self, key_id: str) -> tuple[str, bytes] | None:
        """(tenant, SHA-256 of the key) of a key that works, or None. A revocation or deletion is announced on
        API_KEYS_CHANNEL with the key id when it commits."""
        row = await self._pool.fetchrow(
            "SELECT tenant, key_sha256 FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL", key_id
        )
        return None if row is None else (row["tenant"], row["key_sha256"])

    async def set_plan(self, name: str, plan: str, overrides: dict[str, JsonValue]) -> TenantRecord:
        """Replace the tenant's plan name and overrides (callers validate them with `resolve_plan` first)."""
        updated = await self._pool.fetchval(
            "UPDATE tenants SET plan = $2, plan_overrides = $3 WHERE name = $1 RETURNING name", name, plan, overrides
        )
        if updated is None:
            raise UnknownTenant(name)
        record = await self.get(name)
        if record is None:  # deleted between the two statements
            raise UnknownTenant(name)
        return record

    async def get(self, name: str) -> TenantRecord | None:
        row = await self._pool.fetchrow(_SELECT + " WHERE t.name = $1 GROUP BY t.name", name)
        return TenantRecord.model_validate(dict(row)) if row else None

    async def list(self) -> list[TenantRecord]:
        rows = await self._pool.fetch(_SELECT + " GROUP BY t.name ORDER BY t.name")
        return [TenantRecord.model_validate(dict(row)) for row in rows]

    @staticmethod
    async def _lock_tenant(connection: asyncpg.Connection, name: str) -> None:
        if await connection.fetchval("SELECT name FROM tenants WHERE name = $1 FOR UPDATE", name) is None:
            raise UnknownTenant(name)

    @staticmethod
    async def _insert_key(connection: asyncpg.Connection, name: str, key: IssuedKey) -> None:
        await connection.execute(
            "INSERT INTO api_keys (key_id, tenant, key_sha256) VALUES ($1, $2, $3)", key.key_id, name, key.digest
        )
