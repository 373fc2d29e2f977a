"""`sluice jobs list|show|cancel|rerun`: the caller's jobs through intake's REST API."""

import argparse
import itertools
from collections.abc import Iterator

from pydantic import JsonValue

from sluice.cli.common import UsageError, client, connection_options, emit_json, say
from sluice.cli.watching import add_watch_options, watch
from sluice.client import JobView, SluiceClient
from sluice.contracts.events import JobStatus

COLUMNS = ("job_id", "kind", "status", "total", "succeeded", "failed", "created_at")
RERUN_STATUSES = {"failed", "timed_out", "cancelled"}
_NONE = object()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    jobs = subparsers.add_parser("jobs", help="list, show, cancel and rerun jobs", description=__doc__)
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_options()

    listing = actions.add_parser("list", parents=[common], help="the tenant's jobs, newest first")
    listing.add_argument("--status", choices=[status.value for status in JobStatus])
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int, default=50, help="jobs per page, 1-500 (default 50)")
    listing.add_argument("--cursor", help="continue after a previous page")
    listing.add_argument("--all", action="store_true", help="every page, not just one (JSON: one document per job)")
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", parents=[common], help="one job's status and counts")
    show.add_argument("job")
    add_watch_options(show)
    show.set_defaults(run=run_show)

    cancel = actions.add_parser("cancel", parents=[common], help="cancel a job (unprocessed items end cancelled)")
    cancel.add_argument("job")
    cancel.set_defaults(run=run_cancel)

    rerun = actions.add_parser(
        "rerun", parents=[common], help="submit a new job of the same kind and options",
        description="Submit a new job with the same kind, options and priority as JOB and its items, taken from "
        "JOB's results (so only items that have a result are rerun).",
    )  # fmt: skip
    rerun.add_argument("job")
    rerun.add_argument("--failed-only", action="store_true", help="only items that failed, timed out or were cancelled")
    add_watch_options(rerun)
    rerun.set_defaults(run=run_rerun)


def _row(view: JobView) -> str:
    c = view.counts
    values = (view.job_id, view.kind, view.status.value, c.total, c.succeeded, c.failed, view.created_at.isoformat())
    return "\t".join(str(value) for value in values)


def run_list(args: argparse.Namespace) -> int:
    if args.all:
        return _list_all(args)
    with client(args) as sluice:
        page = sluice.list_jobs(status=args.status, kind=args.kind, limit=args.limit, cursor=args.cursor)
    if args.json:
        emit_json(page.model_dump(mode="json"))
        return 0
    say("\t".join(COLUMNS))
    for view in page.jobs:
        say(_row(view))
    if page.next_cursor:
        say(f"more: --cursor {page.next_cursor}")
    return 0


def _list_all(args: argparse.Namespace) -> int:
    """Every page, printed as it arrives (JSON lines with --json)."""
    with client(args) as sluice:
        if not args.json:
            say("\t".join(COLUMNS))
        for view in sluice.iter_jobs(status=args.status, kind=args.kind, page_size=args.limit):
            say(view.model_dump_json() if args.json else _row(view))
    return 0


def _show(view: JobView, as_json: bool) -> None:
    if as_json:
        emit_json(view.model_dump(mode="json"))
        return
    c = view.counts
    say(f"job       {view.job_id}\nkind      {view.kind}\nstatus    {view.status.value}\n"
        f"progress  {view.percent:.1f}% ({c.done}/{c.total})\n"
        f"counts    ok {c.succeeded}  failed {c.failed}  timed out {c.timed_out}  cancelled {c.cancelled}\n"
        f"created   {view.created_at.isoformat()}\nfinished  {view.finished_at or '-'}"
        + (f"\nerror     {view.error}" if view.error else ""))  # fmt: skip


def run_show(args: argparse.Namespace) -> int:
    with client(args) as sluice:
        if args.watch:
            return watch(sluice, args.job, args.json, args.timeout)
        _show(sluice.status(args.job), args.json)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    with client(args) as sluice:
        _show(sluice.cancel(args.job), args.json)
    return 0


def rerun_items(sluice: SluiceClient, job_id: str, failed_only: bool) -> Iterator[JsonValue]:
    """The inputs to submit again, read page by page (a big job is streamed, never held whole)."""
    results = sluice.iter_results(job_id)
    chosen = (r.input for r in results if not failed_only or r.status.value in RERUN_STATUSES)
    first = next(chosen, _NONE)
    if first is _NONE:
        raise UsageError(f"job {job_id} has no {'failed ' if failed_only else ''}results to rerun")
    return itertools.chain([first], chosen)  # type: ignore[list-item]


def run_rerun(args: argparse.Namespace) -> int:
    with client(args) as sluice:
        original = sluice.status(args.job)
        items = rerun_items(sluice, args.job, args.failed_only)
        accepted = sluice.submit(original.kind, items, options=original.options, priority=original.priority.value)
        if args.watch:
            if not args.json:
                say(f"job {accepted.job_id} accepted: {accepted.total_items} items (rerun of {args.job})")
            return watch(sluice, accepted.job_id, args.json, args.timeout)
    if args.json:
        emit_json(accepted.model_dump(mode="json") | {"rerun_of": args.job})
    else:
        say(f"job {accepted.job_id} accepted: {accepted.total_items} items (rerun of {args.job})")
    return 0
