"""A tenant's plan applied to a submission: the limit is named, and batches follow the plan's size."""

import pytest

from services.intake.submission.limits import batch_size_for, check_items, check_priority, naming_plan_limits
from shared.errors import InvalidJob, LimitExceeded, PlanLimitExceeded
from shared.plans import PlanDefaults
from sluice.contracts.events import Priority

pytestmark = pytest.mark.fairness

PLAN = PlanDefaults().plan(max_items_per_job=10, max_batch_size=4, priorities=("normal", "bulk"))


def test_a_job_over_the_plans_item_limit_is_refused_naming_the_plan_limit() -> None:
    check_items(PLAN, 10)
    with pytest.raises(PlanLimitExceeded) as refused:
        check_items(PLAN, 11)

    assert (refused.value.status, refused.value.field) == (413, "items")
    assert refused.value.reason == "items is 11, over the plan's max_items_per_job of 10"


def test_a_streamed_upload_cut_at_the_plans_item_limit_names_the_plan_limit_and_others_pass_unchanged() -> None:
    with pytest.raises(PlanLimitExceeded) as plan_limit, naming_plan_limits(PLAN):
        raise LimitExceeded("items", 11, 10)
    with pytest.raises(LimitExceeded) as system_limit, naming_plan_limits(PLAN):
        raise LimitExceeded("items", 21, 20)

    assert plan_limit.value.plan_limit == "max_items_per_job"
    assert not isinstance(system_limit.value, PlanLimitExceeded)


def test_a_priority_outside_the_plan_is_refused_naming_the_allowed_ones() -> None:
    check_priority(PLAN, Priority.BULK)
    with pytest.raises(InvalidJob) as refused:
        check_priority(PLAN, Priority.HIGH)

    assert (refused.value.status, refused.value.field) == (422, "priority")
    assert "normal, bulk" in refused.value.reason


def test_batches_take_the_smaller_of_intakes_setting_and_the_plans_max_batch_size() -> None:
    assert (batch_size_for(PLAN, 50), batch_size_for(PLAN, 2)) == (4, 2)


def test_a_kinds_own_batch_size_replaces_intakes_setting_but_not_the_plans_cap() -> None:
    roomy = PLAN.model_copy(update={"max_batch_size": 1000})
    assert (batch_size_for(roomy, 50, 1000), batch_size_for(roomy, 50, 10), batch_size_for(PLAN, 50, 1000)) == (
        1000, 10, 4,
    )  # fmt: skip
