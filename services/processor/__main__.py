import asyncio

from services.processor.app import build_app
from services.processor.settings import ProcessorSettings
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    asyncio.run(build_app(ProcessorSettings()).run())


if __name__ == "__main__":
    main()
