import asyncio

from services.aggregator.app import build_app
from services.aggregator.settings import AggregatorSettings
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    asyncio.run(build_app(AggregatorSettings()).run())


if __name__ == "__main__":
    main()
