"""bench.flaky: a kind that fails on purpose, for the retry and chaos suites.

An item is *flaky* when a stable hash of its JSON, mod 100, is below ``options.fail_rate`` × 100
(default 0.3: about 30 % of items). A flaky item's first ``options.fail_times`` calls (default 1) fail
transiently (``ItemFailed(retryable=True)``), after which it returns ``{"item": ..., "calls": n}``.
With ``options.permanent: true`` a flaky item fails permanently instead (never retried).

The call counts live in the processor process (bounded, least recently used forgotten first), so they
start over when a processor restarts, and two processors count separately; items are keyed by their JSON
alone, so jobs that must not share counts should use distinct items.
"""

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import orjson
from pydantic import JsonValue

from shared.errors import ItemFailed
from shared.kinds import ItemHandler, Kind
from shared.kinds.settings import KindSettings

DEFAULT_FAIL_RATE = 0.3
DEFAULT_FAIL_TIMES = 1
MAX_TRACKED_ITEMS = 100_000


def item_key(item: JsonValue) -> str:
    """A stable digest of the item's JSON (keys sorted), the same in every process."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()


def is_flaky(item: JsonValue, fail_rate: float) -> bool:
    """Whether the item fails at all under this fail_rate (deterministic across processes)."""
    return int(item_key(item)[:8], 16) % 100 < round(fail_rate * 100)


def _any_item(item: JsonValue) -> JsonValue:
    return item


def _flaky_options(options: dict[str, JsonValue]) -> dict[str, JsonValue]:
    rate = options.get("fail_rate", DEFAULT_FAIL_RATE)
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ValueError("options.fail_rate must be a number from 0 to 1")
    times = options.get("fail_times", DEFAULT_FAIL_TIMES)
    if not isinstance(times, int) or isinstance(times, bool) or not 0 <= times <= 1000:
        raise ValueError("options.fail_times must be an integer from 0 to 1,000")
    if not isinstance(options.get("permanent", False), bool):
        raise ValueError("options.permanent must be true or false")
    return options


@asynccontextmanager
async def _start(settings: KindSettings) -> AsyncIterator[ItemHandler]:
    calls: OrderedDict[str, int] = OrderedDict()

    async def run(item: JsonValue, options: Mapping[str, JsonValue]) -> JsonValue:
        rate = options.get("fail_rate", DEFAULT_FAIL_RATE)
        times = options.get("fail_times", DEFAULT_FAIL_TIMES)
        assert isinstance(rate, int | float) and isinstance(times, int)
        key = item_key(item)
        count = calls.pop(key, 0) + 1
        calls[key] = count
        if len(calls) > MAX_TRACKED_ITEMS:
            calls.popitem(last=False)
        if is_flaky(item, rate):
            if options.get("permanent") is True:
                raise ItemFailed("bench.flaky: permanent failure")
            if count <= times:
                raise ItemFailed(f"bench.flaky: planned transient failure {count} of {times}", retryable=True)
        return {"item": item, "calls": count}

    yield run


BENCH_FLAKY = Kind(
    "bench.flaky",
    _any_item,
    _start,
    _flaky_options,
    description="Fails options.fail_rate of items transiently for their first options.fail_times calls",
)
