import pytest

from shared.errors import ItemFailed
from shared.failures import Disposition, classify
from shared.kinds.flaky import BENCH_FLAKY, is_flaky
from shared.kinds.settings import KindSettings

ITEMS = [{"n": n} for n in range(200)]


def test_about_the_fail_rate_of_items_are_flaky_and_the_choice_is_stable():
    flaky = [item for item in ITEMS if is_flaky(item, 0.3)]
    assert 40 <= len(flaky) <= 80
    assert flaky == [item for item in ITEMS if is_flaky(dict(item), 0.3)]
    assert not any(is_flaky(item, 0.0) for item in ITEMS)
    assert all(is_flaky(item, 1.0) for item in ITEMS)


async def test_a_flaky_item_fails_transiently_for_its_first_fail_times_calls_then_succeeds():
    options = {"fail_rate": 1.0, "fail_times": 2}
    async with BENCH_FLAKY.start(KindSettings()) as handler:
        failures = []
        for _ in range(2):
            with pytest.raises(ItemFailed) as raised:
                await handler({"n": 1}, options)
            failures.append(raised.value)
        output = await handler({"n": 1}, options)
    assert [classify(f) for f in failures] == [Disposition.RETRY] * 2
    assert output == {"item": {"n": 1}, "calls": 3}


async def test_a_permanent_flaky_item_is_never_retried_and_a_steady_one_never_fails():
    async with BENCH_FLAKY.start(KindSettings()) as handler:
        with pytest.raises(ItemFailed) as raised:
            await handler("x", {"fail_rate": 1.0, "permanent": True})
        assert await handler("x", {"fail_rate": 0.0}) == {"item": "x", "calls": 2}
    assert classify(raised.value) is Disposition.FAIL_ITEM


@pytest.mark.parametrize(
    "options", [{"fail_rate": 2}, {"fail_rate": "0.3"}, {"fail_times": -1}, {"fail_times": 1.5}, {"permanent": 1}]
)
def test_bad_flaky_options_are_refused(options):
    with pytest.raises(ValueError, match="options"):
        BENCH_FLAKY.validate_options(options)
