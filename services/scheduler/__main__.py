import asyncio

from services.scheduler.app import build_app
from services.scheduler.settings import SchedulerSettings
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    asyncio.run(build_app(SchedulerSettings()).run())


if __name__ == "__main__":
    main()
