"""The dispatcher's pure rule: strict priority between classes, weighted deficit round robin between tenants,
and the window, tenant and kind caps."""

from collections import Counter

import pytest

from services.intake.dispatch.dispatcher import kind_caps
from services.intake.dispatch.fair_share import FairShare, QueueKey, Snapshot, TenantLimits
from shared.failures import InvalidRetryOverrides
from sluice.contracts.events import Priority

HIGH, NORMAL, BULK = Priority.HIGH, Priority.NORMAL, Priority.BULK


def limits(**weights: int) -> dict[str, TenantLimits]:
    return {tenant: TenantLimits(weight=weight, max_in_flight=10_000) for tenant, weight in weights.items()}


def by_tenant(grants: dict[QueueKey, int]) -> Counter[str]:
    shares: Counter[str] = Counter()
    for (tenant, _, _), count in grants.items():
        shares[tenant] += count
    return shares


def simulate(fair: FairShare, backlog: dict[QueueKey, int], tenant_limits: dict[str, TenantLimits], ticks: int,
             completed_per_tick: int) -> Counter[str]:  # fmt: skip
    """Run ticks in which ``completed_per_tick`` of the oldest in-flight batches finish; returns releases per tenant."""
    in_flight: list[tuple[str, str]] = []
    released: Counter[str] = Counter()
    for _ in range(ticks):
        del in_flight[:completed_per_tick]
        grants = fair.allocate(Snapshot(dict(backlog), Counter(in_flight)), tenant_limits)
        for key, count in grants.items():
            backlog[key] -= count
            in_flight += [(key[0], key[2])] * count
            released[key[0]] += count
    return released


def test_equal_weights_share_releases_equally_however_much_one_tenant_queued_first() -> None:
    fair = FairShare(window=16)
    backlog = {("a", NORMAL, "bench.cpu"): 200_000, ("b", NORMAL, "bench.cpu"): 500}

    released = simulate(fair, backlog, limits(a=1, b=1), ticks=100, completed_per_tick=4)

    assert abs(released["a"] - released["b"]) <= 2


def test_weights_set_the_ratio_of_releases_while_both_tenants_have_backlog() -> None:
    fair = FairShare(window=30)
    backlog = {("a", NORMAL, "k"): 100_000, ("b", NORMAL, "k"): 100_000}

    released = simulate(fair, backlog, limits(a=3, b=1), ticks=200, completed_per_tick=5)

    assert 2.8 <= released["a"] / released["b"] <= 3.2


def test_a_newcomer_gets_its_share_from_the_next_free_slot_while_the_first_tenant_fills_the_window() -> None:
    fair = FairShare(window=8)
    fair.allocate(Snapshot({("a", NORMAL, "k"): 1000}, {}), limits(a=1))

    grants = fair.allocate(
        Snapshot({("a", NORMAL, "k"): 992, ("b", NORMAL, "k"): 2}, {("a", "k"): 6}), limits(a=1, b=1)
    )

    assert by_tenant(grants) == {"a": 1, "b": 1}


def test_high_priority_takes_every_free_slot_before_normal_and_bulk_gets_only_what_is_left() -> None:
    fair = FairShare(window=10)
    backlog = {("a", NORMAL, "k"): 100, ("b", HIGH, "k"): 3, ("c", BULK, "k"): 100}

    grants = fair.allocate(Snapshot(backlog, {("a", "k"): 4}), limits(a=1, b=1, c=1))

    assert grants == {("b", HIGH, "k"): 3, ("a", NORMAL, "k"): 3}


def test_bulk_uses_the_capacity_normal_work_leaves_idle() -> None:
    fair = FairShare(window=10)
    backlog = {("a", NORMAL, "k"): 2, ("c", BULK, "k"): 100}

    grants = fair.allocate(Snapshot(backlog, {}), limits(a=1, c=1))

    assert grants == {("a", NORMAL, "k"): 2, ("c", BULK, "k"): 8}


def test_a_tenant_at_its_in_flight_cap_is_skipped_and_others_get_the_slots() -> None:
    fair = FairShare(window=20)
    tenant_limits = {"a": TenantLimits(weight=1, max_in_flight=4), "b": TenantLimits(weight=1, max_in_flight=100)}
    backlog = {("a", NORMAL, "k"): 100, ("b", NORMAL, "k"): 100}

    grants = fair.allocate(Snapshot(backlog, {("a", "k"): 3}), tenant_limits)

    assert by_tenant(grants) == {"a": 1, "b": 16}


def test_a_kind_at_its_cap_blocks_only_that_kind_and_the_tenant_goes_on_with_its_other_kinds() -> None:
    fair = FairShare(window=20, kind_caps={"web.page": 2})
    backlog = {("a", NORMAL, "web.page"): 100, ("a", NORMAL, "bench.noop"): 100, ("b", NORMAL, "web.page"): 100}

    grants = fair.allocate(Snapshot(backlog, {("b", "web.page"): 1}), limits(a=1, b=1))

    assert sum(n for (_, _, kind), n in grants.items() if kind == "web.page") == 1
    assert grants[("a", NORMAL, "bench.noop")] == 19 - 1


def test_nothing_is_released_while_the_window_is_full() -> None:
    fair = FairShare(window=4)

    assert fair.allocate(Snapshot({("a", HIGH, "k"): 5}, {("b", "k"): 4}), limits(a=1, b=1)) == {}


def test_a_tenant_cannot_hoard_credit_while_capped_and_spend_it_all_at_once_later() -> None:
    fair = FairShare(window=10)
    tenant_limits = {"a": TenantLimits(weight=1, max_in_flight=1), "b": TenantLimits(weight=1, max_in_flight=100)}
    backlog = {("a", NORMAL, "k"): 100, ("b", NORMAL, "k"): 100}
    for _ in range(20):
        fair.allocate(Snapshot(dict(backlog), {("a", "k"): 1, ("b", "k"): 9}), tenant_limits)

    tenant_limits["a"] = TenantLimits(weight=1, max_in_flight=100)
    grants = fair.allocate(Snapshot(dict(backlog), {("b", "k"): 8}), tenant_limits)

    assert by_tenant(grants) == {"a": 1, "b": 1}


def test_the_kind_caps_setting_is_a_json_object_of_positive_batch_counts_and_a_bad_one_names_itself() -> None:
    assert kind_caps('{"web.page": 100}') == {"web.page": 100}
    assert kind_caps("") == {}
    for bad in ('{"web.page": 0}', '{"web.page": "many"}', "[1]", "{nope"):
        with pytest.raises((ValueError, InvalidRetryOverrides), match="SLUICE_FLOW_KIND_MAX_IN_FLIGHT"):
            kind_caps(bad)
