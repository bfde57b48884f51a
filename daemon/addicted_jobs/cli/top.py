"""`addicted-jobs top`: a live view of the queues over the control socket, one frame a second.

Per queue: concurrency, running/ready/scheduled/failed, throughput over the last minute and the
age of the oldest ready job; the last hour's throughput per queue as a sparkline; the upstream
line (breaker per upstream, requests per minute, credentials with quota left); the running jobs
with the time since their attempt started; the last failures. The view survives a daemon restart.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from addicted_jobs.cli import output as out
from addicted_jobs.cli.command import Context
from addicted_jobs.control.client import Unreachable

if TYPE_CHECKING:
    from datetime import datetime

CLEAR = "\x1b[H\x1b[2J"
SPARKS = " ▁▂▃▄▅▆▇█"
SPARK_CELLS = 20  # 60 minutes in cells of 3


def sparkline(per_minute: list[int], cells: int = SPARK_CELLS) -> str:
    """Counts per minute (oldest first) as `cells` block characters scaled to the busiest cell;
    an idle cell is a space, any activity at least the lowest block."""
    if not per_minute:
        return " " * cells
    size = max(1, len(per_minute) // cells)
    sums = [sum(per_minute[i : i + size]) for i in range(0, size * cells, size)]
    top = max(sums) or 1
    return "".join(
        SPARKS[0] if n == 0 else SPARKS[max(1, round(n / top * (len(SPARKS) - 1)))] for n in sums
    )


def _throughput(stats: dict[str, Any]) -> list[str]:
    series = stats.get("jobs_per_minute")
    if series is None:
        return []
    lines = ["", f"last hour, finished per queue ({60 // SPARK_CELLS} min a cell, newest right)"]
    width = max((len(q) for q in series), default=5)
    for queue, counts in series.items():
        lines.append(f"  {queue:<{width}}  |{sparkline(counts)}|  {sum(counts)}/h")
    if not series:
        lines.append("  nothing finished since the daemon started")
    return lines


def _upstream(stats: dict[str, Any]) -> list[str]:
    status = stats.get("upstream")
    if not status:
        return []
    rates = stats.get("upstream_per_minute") or {}
    parts = []
    for name, state in sorted((status.get("breakers") or {}).items()):
        recent = rates.get(name, [])[-6:-1]  # the last five whole minutes
        per_minute = sum(recent) / len(recent) if recent else 0.0
        parts.append(f"{name} {state}, {per_minute:.0f} req/min")
    creds = status.get("credentials") or {}
    parts.append(f"credentials {creds.get('with_quota', 0)}/{creds.get('total', 0)} with quota")
    return ["", "upstream  " + " · ".join(parts)]


def _running(stats: dict[str, Any], now: datetime) -> list[str]:
    running = stats.get("running")
    if running is None:
        return []
    lines = ["", "running (longest first)"]
    if not running:
        lines.append("  none")
    rows = [
        [j["id"], j["name"], j["queue"], j["attempt"], out.ago(j.get("started_at"), now)]
        for j in running
    ]
    if rows:
        table = out.table(["ID", "NAME", "QUEUE", "ATTEMPT", "ELAPSED"], rows)
        lines.extend("  " + line for line in table.splitlines())
    return lines


def render(stats: dict[str, Any], now: datetime | None = None) -> str:
    from datetime import UTC, datetime  # only when top renders: ~2 ms of every command

    now = now or datetime.now(UTC)
    done = stats.get("finished_last_minute", {})
    rows = []
    for q in stats["queues"]:
        counts = q["counts"]
        per_minute = done.get(q["name"], 0)
        rows.append(
            [
                q["name"] + (" (paused)" if q.get("paused") else ""),
                q.get("concurrency"),
                counts.get("running", 0),
                counts.get("ready", 0),
                counts.get("scheduled", 0),
                counts.get("failed", 0),
                per_minute,
                f"{per_minute / 60:.1f}",
                out.duration(q.get("oldest_ready_age_s")),
            ]
        )
    headers = [
        "QUEUE",
        "CONC",
        "RUNNING",
        "READY",
        "SCHEDULED",
        "FAILED",
        "DONE/MIN",
        "/S",
        "OLDEST READY",
    ]
    total = sum(done.values())
    lines = [
        f"addicted-jobs {stats.get('version', '?')}  up {out.duration(stats.get('uptime_s'))}  "
        f"{now:%Y-%m-%d %H:%M:%S} UTC  finished last minute: {total} ({total / 60:.1f}/s)",
        "",
        out.table(headers, rows),
        *_throughput(stats),
        *_upstream(stats),
        *_running(stats, now),
        "",
        "last failures",
    ]
    holder = stats.get("oldest_transaction")
    if holder:
        lines[1:1] = [
            f"WARNING: a transaction open for {out.duration(holder.get('age_s'))} holds back vacuum "
            f"(pid {holder.get('pid')}, {holder.get('state')}, {holder.get('application_name')!r}):"
            " claims slow down until it ends"
        ]
    failures = stats.get("failures") or []
    if not failures:
        lines.append("  none")
    for f in failures:
        error = (f.get("last_error") or "").splitlines()[0][:100] if f.get("last_error") else ""
        lines.append(
            f"  {out.ago(f.get('at'), now):>7} ago  #{f['id']} {f['name']} [{f['queue']}] "
            f"{f.get('outcome') or f['state']} attempt {f['attempt']}: {error}"
        )
    return "\n".join(lines)


async def run_top(ctx: Context, *, interval: float = 1.0, once: bool = False) -> int:
    """Redraw every `interval` seconds until Ctrl-C; `once` prints a single frame (scripts)."""
    clear = ctx.out.isatty() and not once
    while True:
        try:
            frame = render(await ctx.call("stats"))
        except Unreachable as exc:
            if once:
                raise
            await ctx.client.close()  # reconnect next round: the daemon may be restarting
            frame = f"daemon unreachable: {exc}\nretrying every {interval:g} s (Ctrl-C quits)"
        ctx.out.write((CLEAR if clear else "") + frame + "\n")
        ctx.out.flush()
        if once:
            return 0
        try:
            await asyncio.sleep(interval)
        except asyncio.CancelledError:
            return 0
