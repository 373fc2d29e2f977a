"""Apache Kafka's own tests: each module checks once that Java and Kafka's jars are there."""

import pytest

from tests.support import kafka_required


@pytest.fixture(scope="module")
def kafka_jars() -> str:
    """Kafka's classpath; the module's tests skip where Java or Maven is missing (fail if SLUICE_REQUIRE_KAFKA=1)."""
    return kafka_required.kafka_jars()
