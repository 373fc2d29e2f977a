"""The `sluice` command: one module per subcommand with `add_parser(subparsers)`.

The user's commands ship with the client (``COMMANDS``); the operator's (``sluice dev up``, ``sluice tenants``,
``sluice rebuild`` ...) ship with the server and are found through the ``sluice.commands`` entry points, so they
appear only where the server is installed. Exit codes: ``sluice.cli.exits``.
"""

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from types import ModuleType

from sluice.cli.exits import BROKEN_PIPE, EPILOG, INTERRUPTED, exit_code
from sluice.cli.watching import is_terminal
from sluice.errors import SluiceError

COMMANDS = ("submit", "jobs", "results", "dlq", "status", "events", "completion")
PLUGIN_GROUP = "sluice.commands"


def version_text() -> str:
    """``sluice-client X`` and, where the server is installed beside it, ``sluice-server Y``."""
    parts = []
    for distribution in ("sluice-client", "sluice-server"):
        try:
            parts.append(f"{distribution} {version(distribution)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts) or "sluice (version unknown: not installed as a distribution)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice",
        description="Sluice: an event-streaming job pipeline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Expected failures print one line to stderr and exit with their code (exits.py);
    Ctrl-C exits 130 and a closed stdout 141, without a traceback."""
    try:
        args = build_parser().parse_args(argv)
        _show_retries()
        return int(args.run(args))
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        _drop_stdout()
        return BROKEN_PIPE
    except SluiceError as exc:
        sys.stderr.write(f"sluice: {exc}\n")
        return exit_code(exc)


def _command_modules() -> Iterator[ModuleType]:
    for name in COMMANDS:
        yield importlib.import_module(f"sluice.cli.{name}")
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            yield entry.load()
        except ImportError as exc:  # a broken server install leaves the user's commands working, and says so
            sys.stderr.write(f"sluice: operator command {entry.name!r} unavailable: {type(exc).__name__}: {exc}\n")


def _show_retries() -> None:
    """On a terminal, say on stderr when the SDK waits to retry (a pipe or a log gets only the outcome)."""
    if not is_terminal(sys.stderr):
        return
    logger = logging.getLogger("sluice.client")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("sluice: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _drop_stdout() -> None:
    """The reader of stdout went away: send what is left to /dev/null, so exiting does not fail again on flush."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
