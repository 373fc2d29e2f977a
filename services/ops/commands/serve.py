"""`sluice serve NAME`: run one service in the foreground, exactly as `python -m services.NAME` would."""

import argparse
import runpy

from services.ops.devstack.supervisor import SERVICE_NAMES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run one service in the foreground",
        description="Run one Sluice service in the foreground, configured by the usual environment.",
    )
    parser.add_argument("name", choices=SERVICE_NAMES, help="the service to run")
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    runpy.run_module(f"services.{args.name}", run_name="__main__", alter_sys=True)
    return 0
