"""Kinds for benchmarks: bench.noop returns its input; bench.cpu burns a configurable amount of CPU."""

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from pydantic import JsonValue

from shared.kinds import Kind, SyncItemHandler
from shared.kinds.settings import KindSettings
from sluice.contracts.events import MAX_BATCH_SIZE


def _any_item(item: JsonValue) -> JsonValue:
    return item


def _noop(item: JsonValue, options: Mapping[str, JsonValue]) -> JsonValue:
    return item


@asynccontextmanager
async def _start_noop(settings: KindSettings) -> AsyncIterator[SyncItemHandler]:
    yield _noop


def burn(seed: bytes, rounds: int) -> str:
    """Chained SHA-256 over the seed: deterministic CPU work proportional to rounds."""
    digest = seed
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def _cpu_options(options: dict[str, JsonValue]) -> dict[str, JsonValue]:
    rounds = options.get("rounds")
    if rounds is not None and (
        not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= 10_000_000
    ):
        raise ValueError("options.rounds must be an integer from 1 to 10,000,000")
    return options


@asynccontextmanager
async def _start_cpu(settings: KindSettings) -> AsyncIterator[SyncItemHandler]:
    def run(item: JsonValue, options: Mapping[str, JsonValue]) -> JsonValue:
        rounds = options.get("rounds", settings.bench_cpu_default_rounds)
        assert isinstance(rounds, int)
        return {"digest": burn(repr(item).encode(), rounds)}

    yield run


BENCH_NOOP = Kind(
    "bench.noop",
    _any_item,
    _start_noop,
    description="Returns its input unchanged",
    deterministic=True,
    batch_size=MAX_BATCH_SIZE,
)
BENCH_CPU = Kind(
    "bench.cpu",
    _any_item,
    _start_cpu,
    _cpu_options,
    description="Chained SHA-256, options.rounds times",
    deterministic=True,
)
