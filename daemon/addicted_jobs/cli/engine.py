"""The engine's commands of the command line, one small function per control operation.

Each calls an op through ctx and prints the result (a table, or JSON with --json).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from addicted_jobs.cli import output as out
from addicted_jobs.cli.command import (
    EXIT_DAEMON_ERROR,
    Context,
    UsageError,
    arg,
    command,
    positive_seconds,
)

if TYPE_CHECKING:
    import argparse  # annotations only: argparse loads when a parser is built


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
    job = ns.job
    if raw and not raw.lstrip().startswith("{") and "=" in raw:
        pairs.append(raw)  # `--json key=value`: the flag, then a pair argparse took as its value
        raw = ""
    elif raw and not raw.lstrip().startswith(("{", "[", '"')):
        # `--json noop [key=value ...]`: argparse took the job's name as the flag's value.
        if job is not None:
            pairs.insert(0, job)
        job, raw = raw, ""
    if job is None:
        raise UsageError(
            "JOB is required: enqueue JOB [key=value ...] (see `addicted-jobs job-types`)"
        )
    job_args: dict[str, Any] = {}
    if raw:
        try:
            job_args = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json ARGS is not valid JSON: {exc}") from None
        if not isinstance(job_args, dict):
            raise UsageError("--json ARGS must be a JSON object of job arguments")
    job_args.update(parse_pairs(pairs))
    request: dict[str, Any] = {"name": job, "args": job_args}
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
    arg("job", nargs="?", help="job name, e.g. noop (`addicted-jobs job-types` lists them)"),
    arg("pairs", nargs="*", metavar="key=value", help="job arguments"),
    arg("--json", nargs="?", const="", default=None, metavar="ARGS", help="JSON job arguments"),
    arg("--after", type=int, metavar="JOB_ID", help="run after this job succeeds"),
    arg("--delay", type=float, metavar="SECONDS", help="run no sooner than this"),
    arg("--count", type=int, metavar="N", help="enqueue N copies in one request"),
    json_flag=False,
    epilog="Every job with its queue, arguments and policies: `addicted-jobs job-types`.",
)
async def enqueue(ctx: Context, ns: argparse.Namespace) -> int:
    request, ctx.json = enqueue_request(ns)
    result = await ctx.call("enqueue", request)
    name = request["name"]

    def human(r: dict[str, Any]) -> str:
        if "ids" in r:
            return f"enqueued {len(r['ids'])} x {name}: {r['created']} new, ids {_ids(r['ids'])}"
        fresh = "new" if r["created"] else "already queued (unique key)"
        return f"job {r['id']}: {name}, {r['state']} ({fresh})"

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

    result = await ctx.call("ping")
    ctx.emit(result, human)
    if result.get("database") != "ok":
        if not ctx.json:
            print(f"addicted-jobs ping: the database is {result.get('database')}", file=sys.stderr)
        return EXIT_DAEMON_ERROR
    return 0


@command("job", "show one job", arg("id", type=int))
async def job(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("job", {"id": ns.id}), out.job_block)
    return 0


@command("queues", "per queue: concurrency, counts by state, oldest ready age")
async def queues(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("queues"), lambda r: out.queues_table(r["queues"]))
    return 0


@command("pause", "stop taking jobs from a queue", arg("queue"))
async def pause(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("pause", {"queue": ns.queue}), lambda r: f"queue {r['queue']} paused")
    return 0


@command("resume", "take jobs from a paused queue again", arg("queue"))
async def resume(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("resume", {"queue": ns.queue}), lambda r: f"queue {r['queue']} resumed")
    return 0


@command(
    "recurring",
    "recurring jobs with their last and next fire times; recurring disable|enable NAME",
    arg("action", nargs="?", choices=["disable", "enable"], help="disable or enable an entry"),
    arg("name", nargs="?", help="the recurring entry (with disable/enable)"),
)
async def recurring(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.action is not None:
        if ns.name is None:
            raise UsageError(f"recurring {ns.action} NAME: which entry?")
        result = await ctx.call(f"recurring-{ns.action}", {"name": ns.name})
        state = "enabled" if result["enabled"] else "disabled"
        note = "" if result["changed"] else " (it already was)"
        ctx.emit(result, lambda r: f"recurring {r['name']} {state}{note}; kept across restarts")
        return 0
    if ns.name is not None:
        raise UsageError("recurring takes no NAME without disable or enable")

    def on(e: dict[str, Any]) -> str:
        if e["enabled"]:
            return "yes"
        return "no (config)" if not e.get("enabled_in_config", True) else "no (disabled)"

    def human(r: dict[str, Any]) -> str:
        rows = [
            [
                e["name"],
                e["job"],
                e["args"] or "",
                e["cron"],
                on(e),
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


def _args_text(args: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{a['name']}: {a['type']}" + ("" if a["required"] else f" = {a['default']!r}")
        for a in args
    )


def _retry_text(t: dict[str, Any]) -> str:
    if t["retries"] == 0:
        return "none"
    delays = t["retry_delays_s"]
    how = "formula" if isinstance(delays, str) else "table " + "/".join(f"{d:g}" for d in delays)
    return f"{t['retries']}, {how}, then {t['on_exhausted']}"


@command(
    "job-types", "every registered job: queue, arguments, unique key, retries, timeout, cap, lock"
)
async def job_types(ctx: Context, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        blocks = []
        for t in r["job_types"]:
            unique = (
                f"{t['unique_key']} (TTL {out.duration(t['unique_ttl_s'])})"
                if t["unique_key"]
                else "-"
            )
            lock = f"{t['lock_mode']} {t['lock_key']}" if t["lock_key"] else "-"
            fields = [
                ("queue", t["queue"]),
                ("args", _args_text(t["args"]) or "no arguments"),
                ("unique key", unique),
                ("retries", _retry_text(t)),
                ("timeout", out.duration(t["timeout_s"]) if t["timeout_s"] else "-"),
                ("cap", t["cap"]),
                ("lock", lock),
            ]
            if t["description"]:
                fields.append(("about", t["description"]))
            body = "\n".join("  " + line for line in out.key_values(fields).splitlines())
            blocks.append(f"{t['name']}\n{body}")
        return "\n\n".join(blocks)

    ctx.emit(await ctx.call("job-types"), human)
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


@command(
    "reload",
    "re-read the daemon's configuration and say what changed; exit 1 with the reason when the "
    "new configuration is refused (systemd's ExecReload=)",
)
async def reload(ctx: Context, ns: argparse.Namespace) -> int:
    def human(r: dict[str, Any]) -> str:
        applied, restart = r.get("applied", []), r.get("needs_restart", [])
        if not applied and not restart:
            return "configuration reloaded: nothing changed"
        lines = ["configuration reloaded"]
        if applied:
            lines.append("applied: " + ", ".join(applied))
        if restart:
            lines.append("needs a restart (systemctl restart addicted-jobs): " + ", ".join(restart))
        return "\n".join(lines)

    ctx.emit(await ctx.call("reload"), human)
    return 0


@command(
    "top",
    "live view of the queues, refreshed every second (Ctrl-C quits)",
    arg(
        "--interval",
        type=positive_seconds(0.1),
        default=1.0,
        help="seconds between refreshes (0.1 or more)",
    ),
    arg("--once", action="store_true", help="print one frame and exit"),
    json_flag=False,
)
async def top(ctx: Context, ns: argparse.Namespace) -> int:
    from addicted_jobs.cli.top import run_top  # ~1.7 ms that no other command needs

    return await run_top(ctx, interval=ns.interval, once=ns.once)


@command("nodes", "the daemons sharing this database ([cluster]) and the jobs each runs")
async def nodes(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("nodes"), out.render_nodes)
    return 0
