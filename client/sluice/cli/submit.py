"""`sluice submit KIND FILE|-`: submit a job from a CSV, JSONL or plain-lines file (or stdin), and watch it."""

import argparse
import json
import sys
from typing import TextIO

from sluice.cli.common import UsageError, client, connection_options, emit_json, say
from sluice.cli.watching import add_watch_options, watch
from sluice.client import JobAccepted, SluiceClient
from sluice.client.items import FORMATS, read_items


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        parents=[connection_options()],
        help="submit a job from a file or stdin",
        description="Submit every item of FILE (or stdin for -) as one job of KIND. CSV rows become objects "
        "keyed by the header; JSONL lines are JSON values; any other file is one string item per line.",
    )
    parser.add_argument("kind", help="the job's kind, e.g. web.page")
    parser.add_argument("file", help="a .csv, .jsonl/.ndjson or text file; - reads stdin")
    parser.add_argument("--format", choices=FORMATS, help="the input's format (default: from the suffix; stdin: lines)")
    parser.add_argument("--options", type=json_object, default=None, help="the job's options as a JSON object")
    parser.add_argument("--priority", choices=("high", "normal", "bulk"))
    parser.add_argument(
        "--idempotency-key",
        help="a submission with the same key returns the same job (default: a new one per run, kept on its retries)",
    )
    add_watch_options(parser)
    parser.set_defaults(run=run_submit)


def json_object(text: str) -> dict:
    """argparse type: a JSON object, or a usage error saying so."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. {"rounds": 10}')
    return value


def run_submit(args: argparse.Namespace) -> int:
    with client(args) as sluice:
        if args.file == "-":
            accepted = _submit(sluice, args, sys.stdin, args.format or "lines")
        else:
            try:
                with open(args.file, encoding="utf-8", newline="") as stream:
                    accepted = _submit(sluice, args, stream, args.format or args.file)
            except OSError as exc:
                raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
        if not args.watch:
            if args.json:
                emit_json(accepted.model_dump(mode="json"))
            else:
                say(f"job {accepted.job_id} accepted: {accepted.total_items} items")
            return 0
        if not args.json:
            say(f"job {accepted.job_id} accepted: {accepted.total_items} items")
        return watch(sluice, accepted.job_id, args.json, args.timeout)


def _submit(sluice: SluiceClient, args: argparse.Namespace, stream: TextIO, fmt: str) -> JobAccepted:
    return sluice.submit(
        args.kind, read_items(stream, fmt), options=args.options, priority=args.priority,
        idempotency_key=args.idempotency_key,
    )  # fmt: skip
