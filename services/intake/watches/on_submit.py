"""Watching a just-accepted job's items: the ``rescan`` field of POST /v1/jobs."""

from collections.abc import Iterable
from uuid import UUID

from pydantic import JsonValue

from services.intake.runtime import IntakeRuntime
from services.intake.watches.spec import RescanSpec
from shared.fingerprints import item_key
from shared.stores.watches import NewWatch, WatchStore


async def watch_job(
    rt: IntakeRuntime, tenant: str, spec: RescanSpec, job_id: UUID, kind: str, options: dict[str, JsonValue],
    priority: str, items: Iterable[JsonValue],
) -> UUID:  # fmt: skip
    """Create the watch; it takes the job's id, so a retried submit (same Idempotency-Key) makes no second one."""
    keyed = ((item_key(rt.kinds, kind, item), item) for item in items)
    watch = NewWatch(job_id, tenant, kind, options, str(priority), spec.config(), source_job_id=job_id)
    await WatchStore(rt.pool).create(watch, keyed)
    return job_id
