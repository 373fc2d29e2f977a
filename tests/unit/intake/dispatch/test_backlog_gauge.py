"""The backlog gauge's values: queued batches summed per priority over tenants and kinds, every priority listed."""

from services.intake.dispatch.dispatcher import backlog_by_priority
from shared.stores.backlog import BacklogCounts
from sluice.contracts.events import Priority


def test_queued_batches_are_summed_per_priority_and_in_flight_ones_left_out() -> None:
    counts = BacklogCounts(
        queued={
            ("acme", Priority.NORMAL, "web.page"): 3,
            ("globex", Priority.NORMAL, "bench.noop"): 2,
            ("acme", Priority.HIGH, "web.page"): 1,
        },
        in_flight={("acme", "web.page"): 7},
    )

    assert backlog_by_priority(counts) == {"high": 1, "normal": 5, "bulk": 0}


def test_an_empty_backlog_reports_zero_for_every_priority() -> None:
    assert backlog_by_priority(BacklogCounts(queued={}, in_flight={})) == {"high": 0, "normal": 0, "bulk": 0}
