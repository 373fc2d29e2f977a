"""The `sluice` command: one module per subcommand with `add_parser(subparsers)`.

The user's commands ship with the client (``COMMANDS``); the operator's (``sluice dev up``, ``sluice tenants``,
``sluice rebuild`` ...) ship with the server and are found through the ``sluice.commands`` entry points, so they
appear only where the server is installed.
"""

import argparse
import importlib
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from types import ModuleType

from sluice.errors import SluiceError

COMMANDS = ("submit", "jobs", "results", "dlq")
PLUGIN_GROUP = "sluice.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description="Sluice: an event-streaming job pipeline.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; expected failures print one line to stderr and exit 2, without a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except SluiceError as exc:
        sys.stderr.write(f"sluice: {exc}\n")
        return 2


def _command_modules() -> Iterator[ModuleType]:
    for name in COMMANDS:
        yield importlib.import_module(f"sluice.cli.{name}")
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        yield entry.load()


if __name__ == "__main__":
    sys.exit(main())
