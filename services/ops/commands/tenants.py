"""`sluice tenants`: create tenants, list them, revoke and rotate their API keys, set their plans.

Talks to PostgreSQL directly (DATABASE_URL), like an operator's console: these are the commands that make
the keys every REST call needs, so they cannot themselves go through the REST API.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import JsonValue

from shared.api_keys import IssuedKey
from shared.config import PostgresSettings
from shared.errors import DatabaseUnavailable
from shared.plans import InvalidPlan, Plan, TenancySettings, resolve_plan
from shared.postgres import CONNECTION_ERRORS, apply_migrations, open_pool
from shared.stores.tenants import TenantRecord, TenantStore, UnknownTenant
from sluice.errors import SluiceError

COLUMNS = ("name", "plan", "overrides", "active_keys", "created_at")


class DatabaseError(SluiceError):
    """PostgreSQL answered with an error (e.g. DATABASE_URL names a database that does not exist)."""


class UnknownKey(SluiceError):
    def __init__(self, tenant: str, key_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no active key {key_id!r}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    tenants = subparsers.add_parser(
        "tenants",
        help="create tenants and manage their API keys and plans",
        description=(
            "Manage tenants in the database named by DATABASE_URL: create one (its API key is printed once), "
            "list them, revoke or rotate keys, set a plan and per-tenant limits."
        ),
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", parents=[common], help="create a tenant and print its first API key once")
    create.add_argument("name", help="the tenant's name: letters, digits and . _ : - (at most 200)")
    _plan_arguments(create)
    create.set_defaults(run=run_create)

    listing = actions.add_parser("list", parents=[common], help="list tenants with their plans and active key ids")
    listing.set_defaults(run=run_list)

    revoke = actions.add_parser("revoke", parents=[common], help="revoke a tenant's API keys (all, or one by id)")
    revoke.add_argument("name")
    revoke.add_argument("--key", dest="key_id", help="only this key id (as `list` shows it)")
    revoke.set_defaults(run=run_revoke)

    rotate = actions.add_parser(
        "rotate", parents=[common], help="issue a new API key (printed once) and revoke the tenant's older keys"
    )
    rotate.add_argument("name")
    rotate.set_defaults(run=run_rotate)

    set_plan = actions.add_parser(
        "set-plan", parents=[common], help="change a tenant's plan or its own limits; prints the resulting plan"
    )
    set_plan.add_argument("name")
    _plan_arguments(set_plan)
    set_plan.add_argument("--clear-limits", action="store_true", help="drop the tenant's own limits first")
    set_plan.set_defaults(run=run_set_plan)


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", help="a plan name: standard or one in SLUICE_TENANCY_PLANS")
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="LIMIT=VALUE",
        help="a limit of this tenant's own, e.g. requests_per_minute=600 (repeat)",
    )


def parse_limits(pairs: list[str]) -> dict[str, JsonValue]:
    """`--limit name=value` pairs; values are JSON (numbers, lists), else taken as text."""
    limits: dict[str, JsonValue] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidPlan(f"--limit {pair!r}: expected LIMIT=VALUE", field="limit")
        try:
            limits[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            limits[name.strip()] = raw
    return limits


def issue_key(tenant: str, database_url: str, overrides: dict[str, JsonValue] | None = None) -> str:
    """A new key for the tenant (created with these plan overrides if need be); for `sluice dev up` and `demo`."""
    return _run(lambda store: store.key_for(tenant, overrides), PostgresSettings(url=database_url)).token


def _run(work: Callable[[TenantStore], Awaitable[Any]], postgres: PostgresSettings | None = None) -> Any:
    async def main() -> Any:
        pool = await open_pool((postgres or PostgresSettings()).model_copy(update={"pool_min": 0, "pool_max": 2}))
        try:
            await apply_migrations(pool)
            return await work(TenantStore(pool))
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"the database refused: {type(exc).__name__}: {exc}") from exc
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _key_answer(args: argparse.Namespace, name: str, key: IssuedKey, what: str) -> None:
    if args.json:
        _say(json.dumps({"tenant": name, "key_id": key.key_id, "api_key": key.token}))
        return
    _say(f"{what} for tenant {name} (key id {key.key_id}). It is shown only now; store it safely:")
    _say(key.token)


def _plan_of(record: TenantRecord, settings: TenancySettings) -> Plan:
    return resolve_plan(settings.defaults, settings.named_plans(), record.plan, record.plan_overrides)


def run_create(args: argparse.Namespace) -> int:
    settings = TenancySettings()
    plan_name, limits = args.plan or "standard", parse_limits(args.limit)
    resolve_plan(settings.defaults, settings.named_plans(), plan_name, limits)  # refuse what would not resolve
    key = _run(lambda store: store.create(args.name, plan_name, limits))
    _key_answer(args, args.name, key, "API key created")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    _key_answer(args, args.name, _run(lambda store: store.rotate(args.name)), "New API key (older keys revoked)")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    revoked = _run(lambda store: store.revoke(args.name, args.key_id))
    if args.key_id and not revoked:
        raise UnknownKey(args.name, args.key_id)
    _say(
        json.dumps({"tenant": args.name, "revoked": revoked})
        if args.json
        else f"revoked: {', '.join(revoked) or 'none'}"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    settings = TenancySettings()
    records: list[TenantRecord] = _run(lambda store: store.list())
    if args.json:
        answer = [
            record.model_dump(mode="json") | {"limits": _plan_of(record, settings).model_dump(mode="json")}
            for record in records
        ]
        _say(json.dumps(answer, indent=2))
        return 0
    _say("\t".join(COLUMNS))
    for record in records:
        overrides = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(record.plan_overrides.items())) or "-"
        keys = ",".join(record.active_key_ids) or "-"
        _say("\t".join((record.name, record.plan, overrides, keys, record.created_at.isoformat(timespec="seconds"))))
    return 0


def run_set_plan(args: argparse.Namespace) -> int:
    settings = TenancySettings()

    async def change(store: TenantStore) -> TenantRecord:
        record = await store.get(args.name)
        if record is None:
            raise UnknownTenant(args.name)
        plan_name = args.plan or record.plan
        limits = {**({} if args.clear_limits else record.plan_overrides), **parse_limits(args.limit)}
        resolve_plan(settings.defaults, settings.named_plans(), plan_name, limits)
        return await store.set_plan(args.name, plan_name, limits)

    record = _run(change)
    plan = _plan_of(record, settings)
    if args.json:
        _say(json.dumps({"tenant": record.name, "overrides": record.plan_overrides} | plan.model_dump(mode="json")))
        return 0
    _say(f"tenant {record.name}: plan {plan.name}")
    for name, value in plan.model_dump(mode="json").items():
        if name != "name":
            _say(f"  {name:<22} {json.dumps(value)}{'  (own)' if name in record.plan_overrides else ''}")
    return 0
