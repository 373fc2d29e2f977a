"""`sluice results JOB`: export a job's results as CSV or JSONL to a file or stdout."""

import argparse
import sys

from sluice.cli.common import client, connection_options
from sluice.errors import SluiceError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results",
        parents=[connection_options()],
        help="export a job's results",
        description="Stream every result of JOB, in item order, as CSV or JSON lines.",
    )
    parser.add_argument("job", help="the job id")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="jsonl", help="default jsonl")
    parser.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    parser.set_defaults(run=run_results)


def run_results(args: argparse.Namespace) -> int:
    with client(args) as sluice:
        if args.output == "-":
            sluice.export(args.job, sys.stdout.buffer, args.format)
            sys.stdout.flush()
            return 0
        try:
            with open(args.output, "wb") as destination:
                written = sluice.export(args.job, destination, args.format)
        except OSError as exc:
            raise SluiceError(f"cannot write {args.output}: {exc.strerror}") from exc
    sys.stderr.write(f"wrote {written} bytes to {args.output}\n")
    return 0
