from services.processor.app import build_app
from services.processor.settings import ProcessorSettings
from shared.eventloop import run_service
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    settings = ProcessorSettings()
    run_service(build_app(settings).run(), settings.event_loop)


if __name__ == "__main__":
    main()
