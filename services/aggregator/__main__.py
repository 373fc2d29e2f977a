from services.aggregator.app import build_app
from services.aggregator.settings import AggregatorSettings
from shared.eventloop import run_service
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    settings = AggregatorSettings()
    run_service(build_app(settings).run(), settings.event_loop)


if __name__ == "__main__":
    main()
