"""`sluice dlq`: list, show and redrive dead letters through intake's admin REST API."""

import argparse
import json
import os
import sys
from typing import Any

import httpx

from sluice.errors import SluiceError

DEFAULT_URL = "http://127.0.0.1:8000"
COLUMNS = ("id", "job_id", "item_index", "kind", "error_type", "attempts", "redriven_at", "reason")


class IntakeError(SluiceError):
    """Intake could not be reached, or answered with an error."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    dlq = subparsers.add_parser(
        "dlq",
        help="list, show and redrive dead-lettered items",
        description="Inspect the items that ended in a dead-letter topic and put them back on the tasks topic.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("SLUICE_URL", DEFAULT_URL), help="intake's base URL")
    common.add_argument(
        "--api-key",
        default=os.environ.get("SLUICE_API_KEY"),
        help="the tenant's API key, whose dead letters these are (default: $SLUICE_API_KEY)",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="list dead letters, oldest first")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--cursor", default=None, help="continue after this cursor (from a previous page)")
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


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    if not args.api_key:
        raise IntakeError("no API key: pass --api-key or set SLUICE_API_KEY (see `sluice tenants create`)")
    headers = {"Authorization": f"Bearer {args.api_key}"}
    try:
        with httpx.Client(base_url=args.url, timeout=30, trust_env=False) as client:
            response = client.request(method, path, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise IntakeError(f"cannot reach intake at {args.url}: {exc or type(exc).__name__}") from exc
    if response.is_error:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise IntakeError(f"intake answered {response.status_code}: {message}")
    return response.json()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params = {"job_id": args.job, "kind": args.kind, "error": args.error}
    return {name: value for name, value in params.items() if value is not None}


def run_list(args: argparse.Namespace) -> int:
    params = _params(args) | {"limit": args.limit} | ({"cursor": args.cursor} if args.cursor else {})
    answer = _call(args, "GET", "/v1/admin/dlq", params=params)
    if args.json:
        _say(json.dumps(answer, indent=2))
        return 0
    _say("\t".join(COLUMNS))
    for letter in answer["dead_letters"]:
        _say("\t".join("" if letter.get(column) is None else str(letter[column]) for column in COLUMNS))
    if answer.get("next_cursor"):
        _say(f"more: --cursor {answer['next_cursor']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    _say(json.dumps(_call(args, "GET", f"/v1/admin/dlq/{args.id}"), indent=2))
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    body = _params(args) | {"ids": args.ids, "all": args.all, "again": args.again, "limit": args.limit}
    answer = _call(args, "POST", "/v1/admin/dlq/redrive", json=body)
    _say(json.dumps(answer) if args.json else f"redriven: {answer['redriven']}")
    return 0
