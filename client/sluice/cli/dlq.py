"""`sluice dlq`: list, show and redrive the tenant's dead letters through intake's admin REST API."""

import argparse
import json

from sluice.cli.common import UsageError, client, config, connection_options, emit_json, say
from sluice.client import DeadLetter

COLUMNS = ("id", "job_id", "item_index", "kind", "error_type", "attempts", "redriven_at", "reason")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    dlq = subparsers.add_parser(
        "dlq",
        help="list, show and redrive dead-lettered items",
        description="Inspect the items that ended in a dead-letter topic and put them back on the tasks topic. "
        "The API key says whose dead letters these are.",
    )
    common = connection_options()
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="list dead letters, oldest first")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, help="at most this many per page, 1-1000 (default 100)")
    listing.add_argument("--cursor", default=None, help="continue after this cursor (from a previous page)")
    listing.add_argument("--all", action="store_true", help="every page (JSON: one document per line)")
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", parents=[common], help="show one dead letter with its headers and payload")
    show.add_argument("id", type=int)
    show.set_defaults(run=run_show)

    redrive = actions.add_parser(
        "redrive", parents=[common], help="put matching dead-lettered items back on the tasks topic"
    )
    _filters(redrive)
    redrive.add_argument("--id", type=int, action="append", default=[], dest="ids", help="a dead letter id (repeat)")
    redrive.add_argument("--all", action="store_true", help="redrive every dead letter of the tenant")
    redrive.add_argument("--again", action="store_true", help="also those redriven before")
    redrive.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    redrive.set_defaults(run=run_redrive)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", help="only this job id")
    parser.add_argument("--kind", help="only this kind")
    parser.add_argument("--error", help="only those whose reason or error type contains this")


def _keyed(args: argparse.Namespace) -> None:
    if not config(args).api_key:
        raise UsageError("no API key: pass --api-key or set SLUICE_API_KEY (see `sluice tenants create`)")


def _row(letter: DeadLetter) -> str:
    values = letter.model_dump(mode="json")
    return "\t".join("" if values.get(column) is None else str(values[column]) for column in COLUMNS)


def run_list(args: argparse.Namespace) -> int:
    _keyed(args)
    filters = {"job_id": args.job, "kind": args.kind, "error": args.error}
    with client(args) as sluice:
        if args.all:
            if not args.json:
                say("\t".join(COLUMNS))
            for letter in sluice.iter_dead_letters(**filters, page_size=args.limit):
                say(letter.model_dump_json() if args.json else _row(letter))
            return 0
        page = sluice.list_dead_letters(**filters, limit=args.limit, cursor=args.cursor)
    if args.json:
        emit_json(page.model_dump(mode="json"))
        return 0
    say("\t".join(COLUMNS))
    for letter in page.dead_letters:
        say(_row(letter))
    if page.next_cursor:
        say(f"more: --cursor {page.next_cursor}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    _keyed(args)
    with client(args) as sluice:
        emit_json(sluice.dead_letter(args.id).model_dump(mode="json"))
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    _keyed(args)
    if not (args.all or args.ids or args.job or args.kind or args.error):
        raise UsageError("say which dead letters: --job, --kind, --error or --id, or --all for every one")
    with client(args) as sluice:
        redriven = sluice.redrive_dead_letters(
            job_id=args.job, kind=args.kind, error=args.error, ids=args.ids, all=args.all, again=args.again,
            limit=args.limit,
        )  # fmt: skip
    say(json.dumps({"redriven": redriven}) if args.json else f"redriven: {redriven}")
    return 0
