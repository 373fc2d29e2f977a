"""Everything here pins what a broker does (offsets, groups, producers, partitioning), so it runs on every broker
of the matrix: the `broker` marker puts it in the Apache Kafka pass of `make test` too."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.broker)
