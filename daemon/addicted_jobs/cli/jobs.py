"""Finding jobs and acting on them: `jobs` with filters, and `retry`, `cancel`, `delete` on one
job (ID) or on every job a filter matches (with --dry-run first)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from addicted_jobs.cli import output as out
from addicted_jobs.cli.command import Context, UsageError, arg, command
from addicted_jobs.cli.engine import parse_pairs

if TYPE_CHECKING:
    import argparse  # annotations only: argparse loads when a parser is built


def duration_seconds(text: str) -> float:
    """An argparse type: '1h', '30m', '2d', 'PT1H' or a number of seconds, to seconds (> 0)."""
    import argparse  # argparse calls this, so it is loaded already

    from addicted_jobs.settings import DURATION_FORMS, parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        detail = str(exc) if str(exc).startswith("too long") else f"expected {DURATION_FORMS}"
        raise argparse.ArgumentTypeError(f"{text!r}: {detail}") from None
    seconds = float(value.total_seconds())
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration above zero")
    return seconds


FILTER_ARGUMENTS = (
    arg("--state", help="awaiting|scheduled|ready|running|succeeded|failed|deleted"),
    arg("--queue", help="queue name (`queues` lists them)"),
    arg("--name", help="job type (`job-types` lists them)"),
    arg(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="arg_pairs",
        help="an argument's value, e.g. --arg show_id=42 (repeatable)",
    ),
    arg("--since", type=duration_seconds, metavar="AGE", help="created within, e.g. 1h, 30m, 2d"),
    arg("--older-than", type=duration_seconds, metavar="AGE", help="created before, e.g. 7d"),
    arg("--error", metavar="TEXT", help="last error contains TEXT (case-insensitive)"),
)


def filter_request(ns: argparse.Namespace) -> dict[str, Any]:
    """The filter fields of a jobs / bulk request from the command line's flags."""
    request: dict[str, Any] = {}
    for key in ("state", "queue", "name", "error"):
        if getattr(ns, key, None) is not None:
            request[key] = getattr(ns, key)
    if getattr(ns, "since", None) is not None:
        request["since_s"] = ns.since
    if getattr(ns, "older_than", None) is not None:
        request["older_than_s"] = ns.older_than
    pairs = getattr(ns, "arg_pairs", None) or []
    if pairs:
        request["args"] = {
            k: str(v) if not isinstance(v, str) else v for k, v in parse_pairs(pairs).items()
        }
    return request


def running_for(job: dict[str, Any]) -> str:
    """Time since a running job's attempt started (blank for other states)."""
    return out.ago(job.get("started_at")) if job.get("state") == "running" else ""


@command(
    "jobs",
    "list jobs, newest first, filtered",
    *FILTER_ARGUMENTS,
    arg("--limit", type=int, default=50),
    arg("--before", type=int, dest="before_id", metavar="ID", help="only ids below this (paging)"),
)
async def jobs(ctx: Context, ns: argparse.Namespace) -> int:
    request = filter_request(ns)
    for key in ("limit", "before_id"):
        if getattr(ns, key) is not None:
            request[key] = getattr(ns, key)
    result = await ctx.call("jobs", request)

    def human(r: dict[str, Any]) -> str:
        rows = [
            [
                j["id"],
                j["name"],
                j["queue"],
                j["state"],
                f"{j['attempt']}/{j['max_attempts']}",
                out.ago(j["created_at"]),
                running_for(j),
                out.when(j["run_at"]) if j["state"] == "scheduled" else "",
                j["last_error"] or "",
            ]
            for j in r["jobs"]
        ]
        headers = [
            "ID",
            "NAME",
            "QUEUE",
            "STATE",
            "ATTEMPT",
            "AGE",
            "RUNNING",
            "RUN AT",
            "LAST ERROR",
        ]
        return out.table(headers, rows) if rows else "no jobs match"

    ctx.emit(result, human)
    return 0


def _transition(r: dict[str, Any]) -> str:
    restored = r.get("continuations_restored")
    chain = f" ({restored} continuations waiting again)" if restored else ""
    history = f"\n{r['history']}" if r.get("history") else ""
    return f"job {r['id']}: {r['previous_state']} -> {r['state']}{chain}{history}"


BULK_ARGUMENTS = (
    *FILTER_ARGUMENTS,
    arg("--dry-run", action="store_true", help="print how many match and a sample; change nothing"),
    arg("--limit", type=int, default=None, help="change at most N jobs (default 10000)"),
)


async def single_or_bulk(ctx: Context, ns: argparse.Namespace, action: str) -> int:
    """`ACTION ID` acts on one job; `ACTION --state failed --queue Q ...` on every match."""
    request = filter_request(ns)
    if ns.id is not None:
        if request or ns.dry_run or ns.limit is not None:
            raise UsageError(
                f"give a job ID or filters, not both: {action} ID | {action} --state S ..."
            )
        ctx.emit(await ctx.call(action, {"id": ns.id}), _transition)
        return 0
    if not request:
        raise UsageError(
            f"give a job ID, or filters (--state, --queue, --name, --arg, --since, "
            f"--older-than, --error) to {action} every job that matches"
        )
    request["dry_run"] = ns.dry_run
    if ns.limit is not None:
        request["limit"] = ns.limit
    result = await ctx.call(f"{action}-many", request)
    ctx.emit(result, bulk_text)
    return 0


def bulk_text(r: dict[str, Any]) -> str:
    sample = "\n".join(
        f"  #{j['id']} {j['name']} [{j['queue']}] {j['state']}, created {out.ago(j['created_at'])} ago"
        for j in r["sample"]
    )
    more = (
        f"\n  ... and {r['matched'] - len(r['sample'])} more"
        if r["matched"] > len(r["sample"])
        else ""
    )
    head = f"{r['matched']} jobs match {r['action']}"
    if r["dry_run"]:
        limited = r.get("would_change", r["matched"])
        cut = f", {limited} would change within --limit" if limited < r["matched"] else ""
        return f"{head} (dry run{cut}: nothing changed)" + (f"\n{sample}{more}" if sample else "")
    text = f"{head}: {r['changed']} done"
    if r.get("stopping"):
        text += f", {len(r['stopping'])} running ones being stopped"
    if r.get("remaining"):
        text += f"; {r['remaining']} still match (run it again, or raise --limit)"
    if r.get("history"):
        text += f"\n{r['history']}"
    return text


@command(
    "retry",
    "run a finished or waiting job again now: retry ID, or retry --state failed [filters]",
    arg("id", type=int, nargs="?"),
    *BULK_ARGUMENTS,
)
async def retry(ctx: Context, ns: argparse.Namespace) -> int:
    return await single_or_bulk(ctx, ns, "retry")


@command(
    "cancel",
    "delete a job that has not finished (a running one is stopped): cancel ID, or by filters",
    arg("id", type=int, nargs="?"),
    *BULK_ARGUMENTS,
)
async def cancel(ctx: Context, ns: argparse.Namespace) -> int:
    return await single_or_bulk(ctx, ns, "cancel")


@command(
    "delete",
    "discard a finished job (succeeded, failed, deleted) for good: delete ID, or by filters",
    arg("id", type=int, nargs="?"),
    *BULK_ARGUMENTS,
)
async def delete(ctx: Context, ns: argparse.Namespace) -> int:
    def gone(r: dict[str, Any]) -> str:
        return f"job {r['id']}: {r['previous_state']} -> discarded"

    if ns.id is not None and not filter_request(ns) and not ns.dry_run and ns.limit is None:
        ctx.emit(await ctx.call("delete", {"id": ns.id}), gone)
        return 0
    return await single_or_bulk(ctx, ns, "delete")
