"""A tenant's plan applied to one submission: item count, priority class and batch size. Pure."""

from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import InvalidJob, LimitExceeded, PlanLimitExceeded
from shared.plans import Plan
from sluice.contracts.events import Priority


def check_items(plan: Plan, total_items: int) -> None:
    if total_items > plan.max_items_per_job:
        raise PlanLimitExceeded("max_items_per_job", "items", total_items, plan.max_items_per_job)


@contextmanager
def naming_plan_limits(plan: Plan) -> Iterator[None]:
    """Re-raise an item-count LimitExceeded whose maximum is the plan's as the plan's limit, so the caller knows."""
    try:
        yield
    except LimitExceeded as exc:
        if exc.limit == "items" and exc.maximum == plan.max_items_per_job and not isinstance(exc, PlanLimitExceeded):
            raise PlanLimitExceeded("max_items_per_job", "items", exc.value, exc.maximum) from exc
        raise


def check_priority(plan: Plan, priority: Priority) -> None:
    if priority not in plan.priorities:
        allowed = ", ".join(p.value for p in plan.priorities)
        raise InvalidJob(f"priority {priority.value!r} is not in the plan's priorities ({allowed})", field="priority")


def batch_size_for(plan: Plan, system_batch_size: int, kind_batch_size: int | None = None) -> int:
    """Items per TaskBatch: the kind's own size (Kind.batch_size) or intake's setting, lowered to the plan's
    max_batch_size: the kind knows what its items cost, the plan has the last word."""
    return min(kind_batch_size or system_batch_size, plan.max_batch_size)
