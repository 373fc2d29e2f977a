"""Job kinds: what an item of a job is, how intake validates it, and how the processor runs it.

Built-in kinds live in this package; plug-ins register a ``Kind`` under the ``sluice.kinds``
entry-point group (``my_kind = "my_pkg.kinds:KIND"``).
"""

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import JsonValue

from shared.kinds.settings import KindSettings
from sluice.errors import SluiceError

ItemHandler = Callable[[JsonValue, Mapping[str, JsonValue]], Awaitable[JsonValue]]
"""Runs one item with the job's options and returns its output; raises to fail the item."""
SyncItemHandler = Callable[[JsonValue, Mapping[str, JsonValue]], JsonValue]
"""A handler written as a plain ``def``: for work that never waits (pure computation). The processor calls
it item after item without a timer each, so the item timeout cannot interrupt it."""

ENTRY_POINT_GROUP = "sluice.kinds"


def _accept_options(options: dict[str, JsonValue]) -> dict[str, JsonValue]:
    return options


@dataclass(frozen=True)
class Kind:
    """A kind of work: validation for intake and a handler factory for the processor."""

    name: str
    validate_item: Callable[[JsonValue], JsonValue]
    """Returns the item as it will be sent to the handler; raises ValueError with a reason."""
    start: Callable[[KindSettings], AbstractAsyncContextManager[ItemHandler | SyncItemHandler]]
    """Opens whatever the handler needs (clients, pools) for the life of a processor and yields the handler:
    an ``async def`` for work that waits on I/O, a plain ``def`` for work that does not."""
    validate_options: Callable[[dict[str, JsonValue]], dict[str, JsonValue]] = field(default=_accept_options)
    description: str = ""
    item_key: Callable[[JsonValue], str] | None = None
    """The item's identity across jobs (for change detection and watches); default: shared.fingerprints."""
    fingerprint: Callable[[JsonValue], str] | None = None
    """A hash of the meaningful part of an output, so volatile parts do not count as a change."""
    deterministic: bool = False
    """The output is a function of the input alone, so a result can never differ from the item's last one:
    results are not fingerprinted or compared (their ``change`` stays null) and keep no item state."""
    batch_size: int | None = None
    """Items per TaskBatch for this kind (None: SLUICE_INTAKE_BATCH_SIZE). Tiny, fast items go further in big
    batches (per-message costs dominate); slow items want small ones (a batch's results wait for its last item)."""


class KindLoadError(SluiceError):
    """A plug-in under the sluice.kinds entry-point group could not be loaded."""


def builtin_kinds() -> list[Kind]:
    from shared.kinds.bench import BENCH_CPU, BENCH_NOOP
    from shared.kinds.flaky import BENCH_FLAKY
    from shared.kinds.web_page import WEB_PAGE

    return [WEB_PAGE, BENCH_NOOP, BENCH_CPU, BENCH_FLAKY]


def plugin_kinds() -> list[Kind]:
    kinds: list[Kind] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded: Any = point.load()
        except Exception as exc:  # a broken plug-in must name itself, not crash with an import trace
            raise KindLoadError(f"kind plug-in {point.name!r} ({point.value}) failed to load: {exc}") from exc
        if not isinstance(loaded, Kind):
            raise KindLoadError(f"kind plug-in {point.name!r} ({point.value}) is not a shared.kinds.Kind")
        kinds.append(loaded)
    return kinds


def load_kinds() -> dict[str, Kind]:
    """All kinds by name: built-ins first, then plug-ins (a plug-in may not shadow a built-in)."""
    registry = {kind.name: kind for kind in builtin_kinds()}
    for kind in plugin_kinds():
        if kind.name in registry:
            raise KindLoadError(f"kind plug-in {kind.name!r} clashes with an existing kind")
        registry[kind.name] = kind
    return registry
