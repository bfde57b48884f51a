"""Fair queues: the daemon (a subprocess, as deployed) with a backlog of ready jobs on
fetch-subtitles, each sleeping 50 ms at concurrency 10, while a trickle of jobs is enqueued one
at a time on store-subtitle. Reports each trickle job's start lag (handler start minus the moment
its enqueue returned, both CLOCK_MONOTONIC) as p50/p95/p99/max, next to the same trickle on an
idle daemon, so what the backlog costs is the difference. One JSON line per phase.

    python bench/fairness.py [--backlog 100000] [--trickle 200] [--gap-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]

import asyncpg

from addicted_jobs import logs
from addicted_jobs.db import _init_connection, apply_migrations
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DAEMON_PYTHON = os.environ.get("AJ_BENCH_DAEMON_PYTHON", sys.executable)


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def count(conn: asyncpg.Connection, name: str, state: str) -> int:
    sql = "SELECT count(*) FROM jobs.jobs WHERE name = $1 AND state = $2"
    return int(await conn.fetchval(sql, name, state))


async def phase(args: argparse.Namespace, backlog: int, work: Path) -> dict[str, Any]:
    """One daemon on a fresh database: `backlog` sleeping jobs, then the trickle."""
    name = f"aj_fair_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    for setting in args.pg_setting:  # a diagnosis: e.g. synchronous_commit=off for every session
        key, _, value = setting.partition("=")
        await admin.execute(f'ALTER DATABASE "{name}" SET {key} = {value}')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(dsn)
    proc: subprocess.Popen[bytes] | None = None
    try:
        await _init_connection(conn)
        await apply_migrations(conn)
        sleeper = NewJob("bench_sleep", "fetch-subtitles", {"ms": args.job_ms}, 1)
        for start in range(0, backlog, 20_000):
            await store.enqueue(conn, [sleeper] * min(20_000, backlog - start))
        await conn.execute("ANALYZE jobs.jobs")  # a long-lived table has statistics
        stamps = work / f"stamps-{backlog}.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
        env |= {
            "PYTHONPATH": f"{HERE / 'plugins'}:{ROOT}"
            if DAEMON_PYTHON == sys.executable
            else str(HERE / "plugins"),
            "ADDICTED_JOBS_DATABASE__DSN": dsn,
            "ADDICTED_JOBS_STATE__DIR": str(work / f"state-{backlog}"),
            "ADDICTED_JOBS_LOG__FORMAT": "json",
            "ADDICTED_JOBS_LOG__LEVEL": "warning",
            "ADDICTED_JOBS_QUEUES__FETCH-SUBTITLES__CONCURRENCY": str(args.concurrency),
            "ADDICTED_JOBS_ENGINE__JOB_MODULES": json.dumps(["bench_jobs"]),
            "BENCH_LAT_OUT": str(stamps),
        }
        with open(work / f"daemon-{backlog}.log", "wb") as log:
            proc = subprocess.Popen(
                [DAEMON_PYTHON, "-m", "addicted_jobs", "run"], env=env, stderr=log
            )
        deadline = time.monotonic() + 60
        while backlog and await count(conn, "bench_sleep", "succeeded") < 5 * args.concurrency:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the backlog did not start draining; see {work}")
            await asyncio.sleep(0.05)
        # Warm-up: the trickle queue's first claims (statement preparation) are not measured.
        warm = [NewJob("bench_trickle", "store-subtitle", {"i": -n}, 1) for n in range(1, 6)]
        await store.enqueue(conn, warm)
        while await count(conn, "bench_trickle", "succeeded") < len(warm):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the daemon did not run the warm-up jobs; see {work}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # settled: the trickle dispatcher is LISTEN-waiting again
        big_before, window = await count(conn, "bench_sleep", "succeeded"), time.monotonic()
        cpu_before = cpu_seconds(proc.pid)
        ready_at: dict[int, float] = {}
        for i in range(args.trickle):
            await store.enqueue(conn, [NewJob("bench_trickle", "store-subtitle", {"i": i}, 1)])
            ready_at[i] = time.monotonic()
            await asyncio.sleep(args.gap_ms / 1000)
        while await count(conn, "bench_trickle", "succeeded") < args.trickle + len(warm):
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon died; see {work}")
            await asyncio.sleep(0.05)
        window = time.monotonic() - window
        daemon_cpu = cpu_seconds(proc.pid) - cpu_before
        big_done = await count(conn, "bench_sleep", "succeeded") - big_before
        left = await count(conn, "bench_sleep", "ready")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        started = {i: at for at, i in json.loads(stamps.read_text())}
        lags = [(started[i] - ready_at[i]) * 1000 for i in range(args.trickle)]
        return {
            "bench": "fairness",
            "backlog": backlog,
            "job_ms": args.job_ms,
            "concurrency": args.concurrency,
            "trickle_jobs": args.trickle,
            "gap_ms": args.gap_ms,
            "lag_p50_ms": round(statistics.median(lags), 2),
            "lag_p95_ms": round(percentile(lags, 0.95), 2),
            "lag_p99_ms": round(percentile(lags, 0.99), 2),
            "lag_max_ms": round(max(lags), 2),
            "backlog_jobs_per_s": round(big_done / window, 1),
            "daemon_cpu_pct": round(100 * daemon_cpu / window, 1),  # of one core
            "backlog_left_ready": left,
            "target_p99_ms": 20.0,
            "pg_settings": args.pg_setting,
        }
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp:
        for backlog in ([0] if args.baseline else []) + [args.backlog]:
            emit(await phase(args, backlog, Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--job-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--trickle", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument(
        "--pg-setting", action="append", default=[], metavar="KEY=VALUE",
        help="a PostgreSQL setting for the bench database (ALTER DATABASE ... SET), to diagnose",
    )  # fmt: skip
    args = parser.parse_args()
    logs.configure("warning", "json", sys.stderr)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
