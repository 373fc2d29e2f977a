"""The `sluice` command: one module per subcommand with `add_parser(subparsers)`, listed in SUBCOMMANDS."""

import argparse
import importlib
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

from shared.errors import SluiceError

SUBCOMMANDS = (
    "dev",
    "serve",
    "demo",
    "dlq",
    "tenants",
    "submit",
    "jobs",
    "results",
    "topics",
    "replay",
    "rebuild",
    "groups",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description="Sluice: an event-streaming job pipeline.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _subcommand_modules():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; expected failures print one line to stderr and exit 2, without a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SluiceError as exc:
        sys.stderr.write(f"sluice: {exc}\n")
        return 2


def _subcommand_modules() -> Iterator[ModuleType]:
    for name in SUBCOMMANDS:
        module_name = f"{__package__ or 'services.cli'}.{name}"
        try:
            yield importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the subcommand exists but something it imports is missing: show that


if __name__ == "__main__":
    sys.exit(main())
