"""Human output of the command line: aligned tables, key/value blocks, ages and durations.

Everything takes the JSON-shaped results of the control protocol (timestamps as ISO strings).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from addicted_jobs.jobs import JobState

Row = Sequence[Any]


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Row], max_width: int = 60) -> str:
    """Columns padded to their widest cell; numbers right-aligned; long cells cut with '…'."""
    text_rows = [[cell(v) for v in row] for row in rows]
    numeric = [
        bool(text_rows) and all(_is_number(r[i]) for r in text_rows) for i in range(len(headers))
    ]
    text_rows = [
        [c if len(c) <= max_width else c[: max_width - 1] + "…" for c in r] for r in text_rows
    ]
    widths = [max([len(h), *(len(r[i]) for r in text_rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if numeric[i] else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in text_rows)])


def _is_number(text: str) -> bool:
    return text == "-" or text.replace(".", "", 1).replace("-", "", 1).isdigit()


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        from datetime import datetime  # only to render times: ~2 ms of every command

        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    """3s, 4m05s, 2h03m, 3d04h: short and sortable by eye."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    if s < 60:
        return f"{sign}{abs(seconds):.1f}s" if abs(seconds) < 10 else f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"


def when(value: Any, now: datetime | None = None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM:SS (5m ago|in 5m)' in UTC."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    from datetime import UTC, datetime

    now = now or datetime.now(UTC)
    delta = (moment - now).total_seconds()
    rel = f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({rel})"


def ago(value: Any, now: datetime | None = None) -> str:
    moment = parse_time(value)
    if moment is None:
        return "-"
    from datetime import UTC, datetime

    return duration(((now or datetime.now(UTC)) - moment).total_seconds())


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    items = list(pairs)
    width = max((len(k) for k, _ in items), default=0)
    lines = []
    for key, value in items:
        text = value if isinstance(value, str) else cell(value)
        first, *rest = text.splitlines() or [""]
        lines.append(f"{key.ljust(width)}  {first}")
        lines.extend(" " * (width + 2) + more for more in rest)
    return "\n".join(lines)


def job_block(job: dict[str, Any]) -> str:
    args = json.dumps(job.get("args"), indent=2, ensure_ascii=False)
    fields = [
        ("id", job.get("id")),
        ("name", job.get("name")),
        ("queue", job.get("queue")),
        ("state", job.get("state")),
        ("attempt", f"{job.get('attempt')}/{job.get('max_attempts')}"),
        ("interruptions", job.get("interruptions")),
        ("parent", job.get("parent_id")),
        ("unique key", job.get("unique_key")),
        ("created", when(job.get("created_at"))),
        ("run at", when(job.get("run_at"))),
        ("started", when(job.get("started_at"))),
        ("finished", when(job.get("finished_at"))),
        ("args", args),
        # A job that succeeded after a failed attempt: the error is history, labelled as such.
        (
            "earlier error" if job.get("state") == "succeeded" else "last error",
            job.get("last_error") or "-",
        ),
    ]
    return "\n\n".join(
        [key_values(fields), *history_blocks(job.get("attempts"), job.get("timeline"))]
    )


def _took(seconds: float | None) -> str:
    """A run's duration: milliseconds matter for short jobs."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else duration(seconds)


def history_blocks(
    attempts: list[dict[str, Any]] | None, points: list[dict[str, Any]] | None
) -> list[str]:
    """`job ID`'s runs table, each run's error (with traceback) and the state timeline; none
    for an answer without them (an older daemon)."""
    blocks: list[str] = []
    if attempts is not None:
        rows = [
            [
                a["attempt"],
                a["counted"],
                when(a["started_at"]),
                _took(a["duration_s"]),
                a["outcome"] + (" (refunded)" if a["refunded"] else ""),
                a["state_after"],
                "?" if a["pid"] is None else f"{a['pid']}@{a['host']}",
            ]
            for a in attempts
        ]
        headers = ["RUN", "ATTEMPT", "STARTED", "TOOK", "OUTCOME", "THEN", "PID@HOST"]
        blocks.append("runs:\n" + (table(headers, rows) if rows else "  (none recorded)"))
        shown: dict[str, int] = {}  # error text -> the run that showed it first
        for a in attempts:
            error = a.get("error")
            if error and error in shown:
                blocks.append(f"run {a['attempt']} error: the same as run {shown[error]}")
            elif error:
                shown[error] = a["attempt"]
                blocks.append(f"run {a['attempt']} error:\n{error.rstrip()}")
    if points is not None:
        lines = [f"  {when(p['at'])}  {p['state']:<10} {p['note']}" for p in points]
        blocks.append("timeline:\n" + "\n".join(lines))
    return blocks


# Every state, in the order an operator reads a queue: what runs, what waits, what ended.
QUEUE_STATES: tuple[JobState, ...] = (
    "running",
    "ready",
    "scheduled",
    "awaiting",
    "succeeded",
    "failed",
    "deleted",
)


def queues_table(queues: list[dict[str, Any]]) -> str:
    rows = [
        [
            q["name"],
            q.get("concurrency"),
            "paused" if q.get("paused") else "",
            *(q["counts"].get(s, 0) for s in QUEUE_STATES),
            duration(q.get("oldest_ready_age_s")),
        ]
        for q in queues
    ]
    headers = ["QUEUE", "CONC", "PAUSED", *(s.upper() for s in QUEUE_STATES), "OLDEST READY"]
    return table(headers, rows)


# ---- renderers of single operations ----------------------------------------------------


def render_nodes(result: dict[str, Any]) -> str:
    """A table of nodes (live first), then each live node's running jobs, longest first."""
    if not result["enabled"]:
        return "clustering is off ([cluster] enabled = false): this daemon runs alone"
    rows = []
    for node in result["nodes"]:
        me = " *" if node["id"] == result["this_node"] else ""
        state = "dead" if node["dead_at"] else "live"
        rows.append(
            (
                f"{node['id']}{me}",
                state,
                node["host"],
                node["pid"],
                node["version"],
                node["started"][:19].replace("T", " "),
                f"{duration(node['heartbeat_age_s'])} ago",
                node["running_count"],
            )
        )
    headers = ("NODE", "STATE", "HOST", "PID", "VERSION", "STARTED", "HEARTBEAT", "RUNNING")
    parts = [table(headers, rows)]
    for node in result["nodes"]:
        if node["dead_at"] or not node["running"]:
            continue
        jobs = ", ".join(f"#{j['id']} {j['name']}" for j in node["running"])
        more = node["running_count"] - len(node["running"])
        parts.append(f"node {node['id']} runs: {jobs}" + (f" (+{more} more)" if more > 0 else ""))
    return "\n".join(parts)


def render_request_subtitles(result: dict[str, Any]) -> str:
    """One line for the terminal: what happened and why."""
    if result["enqueued"]:
        return f"enqueued fetch_subtitles as job {result['job_id']}: {result['reason']}"
    return f"not enqueued: {result['reason']}"


def render_credentials(result: dict[str, Any]) -> str:
    """`credentials list` for a terminal."""
    rows = result.get("credentials", [])
    if not rows:
        return "no credentials; add one with `addicted-jobs credentials add COOKIE`"
    header = (
        f"{'ID':>5}  {'COOKIE':<24} {'USAGE':>7} {'DOWNLOADS':>9}  {'EXCEEDED SINCE':<20} LAST USED"
    )
    lines = [header]
    for c in rows:
        lines.append(
            f"{c['id']:>5}  {c['cookie']:<24} {c['usage']:>7} {c['download_usage']:>9}  "
            f"{_day_time(c['exceeded_since']):<20} {_day_time(c['last_used'])}"
        )
    return "\n".join(lines)


def _day_time(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "-"
