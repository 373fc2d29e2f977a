from services.scheduler.app import build_app
from services.scheduler.settings import SchedulerSettings
from shared.eventloop import run_service
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    settings = SchedulerSettings()
    run_service(build_app(settings).run(), settings.event_loop)


if __name__ == "__main__":
    main()
