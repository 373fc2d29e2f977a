"""Plans resolve as defaults, then the named plan, then the tenant's overrides; API keys parse and hash."""

import pytest

from shared.api_keys import digest_matches, key_digest, key_id_of, new_api_key
from shared.plans import InvalidPlan, PlanDefaults, TenancySettings, resolve_plan

pytestmark = pytest.mark.fairness

DEFAULTS = PlanDefaults(requests_per_minute=100, weight=1)
NAMED = {"pro": {"requests_per_minute": 1000, "weight": 4}}


def test_a_tenants_overrides_win_over_its_named_plan_which_wins_over_the_defaults() -> None:
    plan = resolve_plan(DEFAULTS, NAMED, "pro", {"weight": 2})

    assert (plan.name, plan.requests_per_minute, plan.weight, plan.max_batch_size) == ("pro", 1000, 2, 50)


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        ("gold", {}, "plan"),
        ("standard", {"speed": 3}, "speed"),
        ("standard", {"weight": 0}, "weight"),
        ("standard", {"max_batch_size": 5000}, "max_batch_size"),
        ("standard", {"priorities": ["urgent"]}, "priorities.0"),
    ],
)
def test_an_unknown_plan_or_a_bad_override_is_refused_naming_it(name: str, overrides: dict, field: str) -> None:
    with pytest.raises(InvalidPlan) as refused:
        resolve_plan(DEFAULTS, NAMED, name, overrides)

    assert refused.value.field == field


def test_named_plans_come_from_a_json_setting_and_bad_ones_are_named() -> None:
    assert TenancySettings(plans='{"pro": {"weight": 4}}').named_plans() == {"pro": {"weight": 4}}
    for raw, fragment in (("{", "not JSON"), ('["pro"]', "must look like"), ('{"pro": {"weight": -1}}', "weight")):
        with pytest.raises(InvalidPlan, match=fragment):
            TenancySettings(plans=raw).named_plans()


def test_an_issued_key_reads_back_its_id_and_only_its_own_digest_matches() -> None:
    key, other = new_api_key(), new_api_key()

    assert key_id_of(key.token) == key.key_id and key.key_id != other.key_id
    assert digest_matches(key.token, key.digest) and not digest_matches(other.token, key.digest)
    assert key.digest == key_digest(key.token) and key.token not in key.digest.hex()
    for junk in ("", "Bearer x", "sk_short_x", f"pk_{key.key_id}_{'a' * 43}", key.token + "\n"):
        assert key_id_of(junk) is None
