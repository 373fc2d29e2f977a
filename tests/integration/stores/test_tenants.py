"""TenantStore and TenantPlans over the real per-test database: keys, revocation, rotation, plans."""

import asyncpg
import pytest

from shared.api_keys import key_digest
from shared.plans import PlanDefaults, TenancySettings
from shared.stores.tenants import InvalidTenantName, TenantExists, TenantStore, UnknownTenant
from shared.tenant_plans import TenantPlans

pytestmark = pytest.mark.fairness


async def test_a_created_tenants_key_authenticates_as_that_tenant_and_only_its_digest_is_stored(
    db: asyncpg.Pool,
) -> None:
    store = TenantStore(db)
    acme, globex = await store.create("acme"), await store.create("globex")

    assert await store.authenticate(acme.token) == "acme"
    assert await store.authenticate(globex.token) == "globex"
    stored = await db.fetch("SELECT key_id, key_sha256 FROM api_keys ORDER BY key_id")
    assert {row["key_id"] for row in stored} == {acme.key_id, globex.key_id}
    assert {bytes(row["key_sha256"]) for row in stored} == {key_digest(acme.token), key_digest(globex.token)}
    assert not any(acme.token.split("_")[-1].encode() in bytes(row["key_sha256"]) for row in stored)


async def test_unknown_malformed_and_tampered_keys_authenticate_as_nobody(db: asyncpg.Pool) -> None:
    store = TenantStore(db)
    key = await store.create("acme")
    tampered = key.token[:-1] + ("A" if key.token[-1] != "A" else "B")

    for token in ("", "nonsense", "sk_000000000000_" + "x" * 43, tampered, key.token + " "):
        assert await store.authenticate(token) is None, token


async def test_rotation_revokes_every_older_key_and_revoke_can_take_one_key_or_all(db: asyncpg.Pool) -> None:
    store = TenantStore(db)
    first = await store.create("acme")
    second = await store.add_key("acme")
    rotated = await store.rotate("acme")

    assert [await store.authenticate(k.token) for k in (first, second, rotated)] == [None, None, "acme"]
    extra = await store.add_key("acme")
    assert await store.revoke("acme", rotated.key_id) == [rotated.key_id]
    assert [await store.authenticate(k.token) for k in (rotated, extra)] == [None, "acme"]
    assert await store.revoke("acme") == [extra.key_id]
    assert await store.authenticate(extra.token) is None
    assert (await store.get("acme")).active_key_ids == []  # type: ignore[union-attr]


async def test_names_are_unique_and_checked_and_unknown_tenants_are_named(db: asyncpg.Pool) -> None:
    store = TenantStore(db)
    await store.create("acme")

    with pytest.raises(TenantExists):
        await store.create("acme")
    with pytest.raises(InvalidTenantName):
        await store.create("no spaces")
    for action in (store.rotate, store.revoke, store.add_key):
        with pytest.raises(UnknownTenant):
            await action("nobody")
    with pytest.raises(UnknownTenant):
        await store.set_plan("nobody", "standard", {})


async def test_key_for_creates_the_tenant_once_then_adds_keys(db: asyncpg.Pool) -> None:
    store = TenantStore(db)
    first = await store.key_for("acme", {"requests_per_minute": 7})
    second = await store.key_for("acme", {"requests_per_minute": 9})

    record = await store.get("acme")
    assert record is not None and record.plan_overrides == {"requests_per_minute": 7}
    assert sorted(record.active_key_ids) == sorted([first.key_id, second.key_id])


async def test_plan_for_layers_defaults_named_plan_and_overrides_and_rereads_after_the_ttl(
    db: asyncpg.Pool,
) -> None:
    store = TenantStore(db)
    now = [0.0]
    settings = TenancySettings(
        plans='{"pro": {"requests_per_minute": 1000, "weight": 4}}',
        plan_cache_ttl_s=5,
        defaults=PlanDefaults(max_active_jobs=3),
    )
    plans = TenantPlans(store, settings, clock=lambda: now[0])
    await store.create("acme", "pro", {"weight": 2})

    plan = await plans.plan_for("acme")
    await store.set_plan("acme", "standard", {})
    cached = await plans.plan_for("acme")
    now[0] = 5.1
    reread = await plans.plan_for("acme")

    assert (plan.name, plan.requests_per_minute, plan.weight, plan.max_active_jobs) == ("pro", 1000, 2, 3)
    assert cached == plan
    assert (reread.name, reread.requests_per_minute, reread.weight) == ("standard", 100, 1)
    assert await plans.plan_for("unknown-tenant") == settings.defaults.plan()
