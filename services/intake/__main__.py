import uvicorn

from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.telemetry import configure_logging


def main() -> None:
    configure_logging()
    settings = IntakeSettings()
    uvicorn.run(
        build_app(settings), host=settings.host, port=settings.port, http=settings.http, loop=settings.loop,
        log_config=None, access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
