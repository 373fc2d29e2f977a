"""Results messages as the aggregator reads them off the results topic."""

from typing import Any

from shared.wire import WireBatchProcessed, wire_batch_processed
from sluice.contracts.events import BatchProcessed


def results_message(**fields: Any) -> WireBatchProcessed:
    """A BatchProcessed built from the contract's fields, as the aggregator decodes it from the wire."""
    return wire_batch_processed(BatchProcessed(**fields))
