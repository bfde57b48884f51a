"""`addicted-jobs nodes`: the daemons of a cluster on this database and the jobs each runs."""

from __future__ import annotations

import argparse
from typing import Any

from addicted_jobs import cli_output as out
from addicted_jobs.cli import Context, command


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
                f"{out.duration(node['heartbeat_age_s'])} ago",
                node["running_count"],
            )
        )
    headers = ("NODE", "STATE", "HOST", "PID", "VERSION", "STARTED", "HEARTBEAT", "RUNNING")
    parts = [out.table(headers, rows)]
    for node in result["nodes"]:
        if node["dead_at"] or not node["running"]:
            continue
        jobs = ", ".join(f"#{j['id']} {j['name']}" for j in node["running"])
        more = node["running_count"] - len(node["running"])
        parts.append(f"node {node['id']} runs: {jobs}" + (f" (+{more} more)" if more > 0 else ""))
    return "\n".join(parts)


@command("nodes", "the daemons sharing this database ([cluster]) and the jobs each runs")
async def nodes(ctx: Context, ns: argparse.Namespace) -> int:
    ctx.emit(await ctx.call("nodes"), render_nodes)
    return 0
