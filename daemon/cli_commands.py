"""The engine's commands of the command line, one small function per control operation.

Each calls an op through ctx and prints the result (a table, or JSON with --json).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from daemon import cli_output as out
from daemon.cli import Context, UsageError, arg, command


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """key=value words to job arguments. Values stay strings for the job's argument model to
    parse (so sleep_ms=5 becomes an int there); a value starting with [ or { is JSON."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{pair!r} is not key=value")
        if key in args:
            raise UsageError(f"argument {key!r} is given twice")
        if value[:1] in ("[", "{"):
            try:
                args[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise UsageError(f"value of {key!r} is not valid JSON: {exc}") from None
        else:
            args[key] = value
    return args


def enqueue_request(ns: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The enqueue op's arguments and whether the output is JSON. `--json ARGS` gives the job's
    arguments as one JSON object (and JSON output); a bare `--json` only asks for JSON output."""
    pairs = list(ns.pairs)
    raw = ns.json
    if raw and not raw.lstrip().startswith("{") and "=" in raw:
        pairs.append(raw)  # `--json key=value`: the flag, then a pair argparse took as its value
        raw = ""
    job_args: dict[str, Any] = {}
    if raw:
        try:
            job_args = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json ARGS is not valid JSON: {exc}") from None
        if not isinstance(job_args, dict):
            raise UsageError("--json ARGS must be a JSON object of job arguments")
    job_args.update(parse_pairs(pairs))
    request: dict[str, Any] = {"name": ns.job, "args": job_args}
    if ns.after is not None:
        request["after"] = ns.after
    if ns.delay is not None:
        request["delay"] = ns.delay
    if ns.count is not None:
        request["count"] = ns.count
    return request, raw is not None


def _ids(ids: list[int]) -> str:
    if len(ids) > 3 and ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}..{ids[-1]}"
    return ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")


@command(
    "enqueue",
    "enqueue a job: enqueue JOB [key=value ...]",
    arg("job", help="job name, e.g. noop"),
    arg("pairs", nargs="*", metavar="key=value", help="job arguments"),
    arg("--json", nargs="?", const="", default=None, metavar="ARGS", help="JSON job arguments"),
    arg("--after", type=int, metavar="JOB_ID", help="run after this job succeeds"),
    arg("--delay", type=float, metavar="SECONDS", help="run no sooner than this"),
    arg("--count", type=int, metavar="N", help="enqueue N copies in one request"),
    json_flag=False,
)
async def enqueue(ctx: Context, ns: argparse.Namespace) -> int:
    request, ctx.json = enqueue_request(ns)
    result = await ctx.call("enqueue", request)

    def human(r: dict[str, Any]) -> str:
        if "ids" in r:
            return f"enqueued {len(r['ids'])} x {ns.job}: {r['created']} new, ids {_ids(r['ids'])}"
        fresh = "new" if r["created"] else "already queued (unique key)"
        return f"job {r['id']}: {ns.job}, {r['state']} ({fresh})"

    ctx.emit(result, human)
    return 0


@command("ping", "is the daemon up: version, uptime, queue summary")
async def ping(ctx: Context, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        head = (
            f"addicted-jobs {r['version']} (protocol {r['protocol']}), pid {r['pid']}, "
            f"up {out.duration(r['uptime_s'])}, {r['state']}; database {r['database']}"
        )
        rows = [[q, *c.values()] for q, c in (r.get("queues") or {}).items()]
        return head + (
            "\n" + out.table(["QUEUE", "READY", "RUNNING", "SCHEDULED", "FAILED"], rows)
            if rows
            else ""
        )

    ctx.emit(await ctx.call("ping"), human)
    return 0


@command(
    "jobs",
    "list jobs, newest first",
    arg("--state", help="awaiting|scheduled|ready|running|succeeded|failed|deleted"),
    arg("--queue"),
    arg("--name", help="job name"),
    arg("--limit", type=int, default=50),
    arg("--before", type=int, dest="before_id", metavar="ID", help="only ids below this (paging)"),
)
async def jobs(ctx: Context, ns: argparse.Namespace) -> int:
    filters = {k: getattr(ns, k) for k in ("state", "queue", "name", "limit", "before_id")}
    result = await ctx.call("jobs", {k: v for k, v in filters.items() if v is not None})

    def human(r: dict[str, Any]) -> str:
        rows = [
            [
                j["id"],
                j["name"],
                j["queue"],
                j["state"],
                f"{j['attempt']}/{j['max_attempts']}",
                out.ago(j["created_at"]),
                out.when(j["run_at"]) if j["state"] == "scheduled" else "",
                j["last_error"] or "",
            ]
            for j in r["jobs"]
        ]
        headers = ["ID", "NAME", "QUEUE", "STATE", "ATTEMPT", "AGE", "RUN AT", "LAST ERROR"]
        return out.table(headers, rows) if rows else "no jobs match"

    ctx.emit(result, human)
    return 0


@command("job", "show one job", arg("id", type=int))
async def job(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("job", {"id": ns.id}), out.job_block)
    return 0


@command("queues", "per queue: concurrency, counts by state, oldest ready age")
async def queues(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("queues"), lambda r: out.queues_table(r["queues"]))
    return 0


def _transition(r: dict[str, Any]) -> str:
    restored = r.get("continuations_restored")
    chain = f" ({restored} continuations waiting again)" if restored else ""
    return f"job {r['id']}: {r['previous_state']} -> {r['state']}{chain}"


@command("retry", "run a finished or waiting job again now", arg("id", type=int))
async def retry(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("retry", {"id": ns.id}), _transition)
    return 0


@command(
    "cancel", "delete a job that has not finished (a running one is stopped)", arg("id", type=int)
)
async def cancel(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("cancel", {"id": ns.id}), _transition)
    return 0


@command("pause", "stop taking jobs from a queue", arg("queue"))
async def pause(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("pause", {"queue": ns.queue}), lambda r: f"queue {r['queue']} paused")
    return 0


@command("resume", "take jobs from a paused queue again", arg("queue"))
async def resume(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("resume", {"queue": ns.queue}), lambda r: f"queue {r['queue']} resumed")
    return 0


@command("recurring", "recurring jobs with their last and next fire times")
async def recurring(ctx: Context, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        rows = [
            [
                e["name"],
                e["job"],
                e["args"] or "",
                e["cron"],
                e["enabled"],
                out.when(e["last_fire"]),
                out.when(e["next_fire"]),
                e["last_job_id"],
            ]
            for e in r["recurring"]
        ]
        headers = ["NAME", "JOB", "ARGS", "CRON (UTC)", "ON", "LAST FIRE", "NEXT FIRE", "LAST JOB"]
        return out.table(headers, rows) if rows else "no recurring jobs"

    ctx.emit(await ctx.call("recurring"), human)
    return 0


@command("trigger", "fire a recurring job now", arg("name"))
async def trigger(ctx: Context, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        return f"{r['name']} fired: job {r['id']} ({'new' if r['created'] else 'already queued'})"

    ctx.emit(await ctx.call("trigger", {"name": ns.name}), human)
    return 0


@command("migrations", "schema and one-time migrations with their state")
async def migrations(ctx: Context, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        rows = [
            [m["version"], m["name"], m["state"], out.when(m["applied_at"])] for m in r["schema"]
        ]
        text = "schema migrations\n" + out.table(["VERSION", "NAME", "STATE", "APPLIED"], rows)
        if r["onetime"]:
            keys = list(r["onetime"][0])
            rows = [[m.get(k) for k in keys] for m in r["onetime"]]
            text += "\n\none-time migrations\n" + out.table([k.upper() for k in keys], rows)
        return text

    ctx.emit(await ctx.call("migrations"), human)
    return 0


@command("reload", "re-read the daemon's configuration (like SIGHUP)")
async def reload(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("reload"), lambda r: "configuration reloaded")
    return 0


@command(
    "top",
    "live view of the queues, refreshed every second (Ctrl-C quits)",
    arg("--interval", type=float, default=1.0, help="seconds between refreshes"),
    arg("--once", action="store_true", help="print one frame and exit"),
    json_flag=False,
)
async def top(ctx: Context, ns: argparse.Namespace) -> int:
    from daemon.top import run_top

    return await run_top(ctx, interval=ns.interval, once=ns.once)
