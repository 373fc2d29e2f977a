import uvicorn

from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    settings = IntakeSettings()
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
