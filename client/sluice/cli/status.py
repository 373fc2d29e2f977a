"""`sluice status`: is the stack up (intake's /readyz: PostgreSQL, Kafka, Redis), and, with an API key, how far
behind it is for the tenant (backlog, consumer lag, latest dead letters: intake's /v1/dashboard). Exit 0 when
ready, 3 when not (or unreachable)."""

import argparse
from typing import Any

from pydantic import JsonValue

from sluice.cli.common import client, config, connection_options, emit_json, say
from sluice.cli.exits import OK, UNAVAILABLE
from sluice.client import Dashboard, Readiness


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", parents=[connection_options()], help="the stack's health, backlog, lag and dead letters",
        description=__doc__,
    )  # fmt: skip
    parser.set_defaults(run=run_status)


def lag_by_group(rows: list[dict[str, JsonValue]]) -> tuple[dict[tuple[str, str], int], list[str]]:
    """Lag summed over partitions per (group, topic), and the sources intake could not scrape."""
    totals: dict[tuple[str, str], int] = {}
    errors = []
    for row in rows:
        if "error" in row:
            errors.append(f"{row.get('source')}: {row['error']}")
            continue
        key = (str(row.get("group", "")), str(row.get("topic", "")))
        lag = row.get("lag")
        totals[key] = totals.get(key, 0) + int(lag if isinstance(lag, int | float) else 0)
    return totals, errors


def report(url: str, readiness: Readiness, dashboard: Dashboard | None, keyed: bool) -> list[str]:
    """The text `sluice status` prints, pure."""
    lines = [f"intake        {url}  {'ready' if readiness.ready else 'NOT READY'}"]
    lines += [f"  {name:<11} {state}" for name, state in sorted(readiness.checks.items())]
    if dashboard is None:
        why = "intake is not ready" if keyed else "they need an API key (--api-key or SLUICE_API_KEY)"
        return [*lines, f"backlog, lag and dead letters not shown: {why}"]
    backlog: Any = dashboard.backlog
    if backlog is None:
        lines.append("backlog       not reported by this intake")
    else:
        lines.append(
            f"backlog       {backlog['queued_batches']} batches queued, {backlog['in_flight_batches']} in flight"
        )
    totals, errors = lag_by_group(dashboard.lag)
    if not dashboard.lag:
        lines.append("lag           not reported: intake has no SLUICE_INTAKE_DASHBOARD_METRICS_URLS")
    lines += [f"lag           {group or '-'} on {topic}: {lag}" for (group, topic), lag in sorted(totals.items())]
    lines += [f"lag           unavailable from {error}" for error in errors]
    letters = dashboard.dead_letters
    if not letters:
        lines.append("dead letters  none")
    for letter in letters:
        lines.append(
            f"dead letter   #{letter.get('id')} job {letter.get('job_id')} item {letter.get('item_index')} "
            f"{letter.get('error_type') or ''} {letter.get('recorded_at')}: {letter.get('reason')}"
        )
    return lines


def run_status(args: argparse.Namespace) -> int:
    keyed = bool(config(args).api_key)
    with client(args) as sluice:
        readiness = sluice.readiness()
        dashboard = sluice.dashboard() if keyed and readiness.ready else None
    if args.json:
        emit_json(
            {"url": sluice.url, **readiness.model_dump(mode="json")}
            | (
                {}
                if dashboard is None
                else dashboard.model_dump(mode="json", include={"backlog", "lag", "dead_letters"})
            )
        )
    else:
        for line in report(sluice.url, readiness, dashboard, keyed):
            say(line)
    return OK if readiness.ready else UNAVAILABLE
