"""Several daemons as one benchmark worker (issue 19: two nodes against one): starts N
`addicted-jobs run` processes on one database with [cluster] enabled, each with its own state
directory (its control socket), forwards SIGTERM/SIGINT to them and exits when all have, with
the worst exit status. The harness's CPU and RSS accounting of this process then covers the
nodes (wait4 counts reaped children).

    python bench/plugins/nodes.py N PYTHON   # the environment is engine_peer.py's worker_env
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def main() -> int:
    count, python = int(sys.argv[1]), sys.argv[2]
    base = Path(os.environ["ADDICTED_JOBS_STATE__DIR"])
    # The latency phase: each node writes the start times of the jobs it ran (bench_jobs.py) to
    # a file of its own, merged into the harness's one when all have exited.
    lat_out = os.environ.get("BENCH_LAT_OUT")
    nodes = []
    for n in range(count):
        env = {
            **os.environ,
            "ADDICTED_JOBS_STATE__DIR": str(base / f"node-{n}"),
            "ADDICTED_JOBS_CLUSTER__ENABLED": "true",
        }
        if lat_out:
            env["BENCH_LAT_OUT"] = f"{lat_out}.node-{n}"
        nodes.append(subprocess.Popen([python, "-m", "addicted_jobs", "run"], env=env))

    def forward(signum: int, _frame: object) -> None:
        for node in nodes:
            if node.poll() is None:
                node.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = max(node.wait() for node in nodes)
    if lat_out:
        merged: list[object] = []
        for n in range(count):
            part = Path(f"{lat_out}.node-{n}")
            if part.exists():
                merged += json.loads(part.read_text())
        Path(lat_out).write_text(json.dumps(merged))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
