"""Counts at scale (issue 17): round-trip latency of `stats` (what `top` polls every second),
`queues` and `ping` through the real daemon's control socket with 10,000,000 finished jobs
retained, and, for comparison, the GROUP BY scan these calls ran before the counters.

    python bench/counts.py [--rows 10000000] [--n 200]

The finished jobs (and one recorded run each, 1% failed with an error) are generated with one
INSERT ... SELECT generate_series each, not through the engine; 1,000 jobs wait ready in a paused
queue so the oldest-ready age has something to find. Prints JSON lines; target < 20 ms each.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import argparse
import asyncio
import json
import shutil
import signal
import tempfile
import time
from pathlib import Path

import asyncpg
from control_socket import admin_dsn, percentiles, round_trips, with_db

from addicted_jobs import logs
from addicted_jobs.control.client import ControlClient, Unreachable
from addicted_jobs.db import apply_migrations

ROOT = Path(HERE).parent
QUEUES = [
    "default",
    "fetch-subtitles",
    "store-subtitle",
    "refresh-one-show",
    "download-creds-checker",
]
PAUSED = "download-creds-checker"  # holds the 1,000 waiting jobs

# Finished jobs spread over the last 7 days (the default retention), newest last.
_FINISHED = """
INSERT INTO jobs.jobs (name, queue, args, state, attempt, max_attempts, claims, run_at,
                       created_at, started_at, finished_at, last_error, claimed_by)
SELECT 'noop', ($2::text[])[1 + g % cardinality($2::text[])], jsonb_build_object('n', g),
       CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 250 = 1 THEN 'deleted' ELSE 'succeeded' END,
       1, 1, 1, t, t, t, t + interval '40 ms',
       CASE WHEN g % 100 = 0 THEN 'RuntimeError: generated failure' END, '1@bench'
FROM generate_series(1, $1::bigint) AS g,
     LATERAL (SELECT now() - interval '7 days' * (1 - g::float8 / $1) AS t) AS x
"""

_RUNS = """
INSERT INTO jobs.attempts (job_id, attempt, counted, due_at, started_at, finished_at, duration_s,
                           outcome, state_after, error, refunded, pid, host)
SELECT id, 1, 1, run_at, started_at, finished_at, 0.04,
       CASE state WHEN 'succeeded' THEN 'succeeded' ELSE state END, state, last_error, false, 1,
       'bench'
FROM jobs.jobs
"""


def emit(**fields: object) -> None:
    load = round(os.getloadavg()[0], 2)
    print(json.dumps({"bench": "counts", **fields, "loadavg_1m": load}), flush=True)


async def generate(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
        started = time.perf_counter()
        await conn.execute(_FINISHED, rows, QUEUES)
        await conn.execute(_RUNS)
        await conn.execute(
            "INSERT INTO jobs.jobs (name, queue, state, max_attempts) "
            "SELECT 'noop', $1, 'ready', 1 FROM generate_series(1, 1000)",
            PAUSED,
        )
        await conn.execute("INSERT INTO jobs.queues (name, paused) VALUES ($1, true)", PAUSED)
        await conn.execute("VACUUM ANALYZE jobs.jobs")
        await conn.execute("VACUUM ANALYZE jobs.attempts")
        emit(phase="generate", rows=rows, seconds=round(time.perf_counter() - started, 1))
        # What stats, queues and ping each ran before the counters (one full scan per call).
        samples = []
        for _ in range(3):
            t = time.perf_counter()
            await conn.fetch("SELECT queue, state, count(*) FROM jobs.jobs GROUP BY queue, state")
            samples.append(time.perf_counter() - t)
        emit(phase="group_by_scan", rows=rows, n=3, **percentiles(samples))
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="finished jobs retained")
    parser.add_argument("--n", type=int, default=200, help="round trips per call")
    opts = parser.parse_args()
    logs.configure("warning", "json", sys.stderr)  # stdout carries only the JSON lines
    name = f"aj_bench_counts_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="ajbc", dir="/tmp"))
    daemon = None
    log = (work / "daemon.log").open("w")
    try:
        dsn = with_db(admin_dsn(), name)
        await generate(dsn, opts.rows)
        config = work / "config.toml"
        config.write_text(
            f'[database]\ndsn = "{dsn}"\n[state]\ndir = "{work / "state"}"\n'
            f'[control]\nsocket = "{work / "c.sock"}"\n[log]\nformat = "json"\n'
        )
        daemon = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "addicted_jobs", "run", "--config", str(config),
            cwd=ROOT, stdout=log, stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                async with ControlClient(work / "c.sock", timeout=2) as probe:
                    await probe.call("ping")
                break
            except Unreachable:
                if daemon.returncode is not None or time.monotonic() > deadline:
                    raise SystemExit(f"daemon did not start; see {work / 'daemon.log'}") from None
                await asyncio.sleep(0.2)
        async with ControlClient(work / "c.sock", timeout=60) as client:
            for op in ("stats", "queues", "ping"):
                samples = await round_trips(client, op, {}, opts.n)
                emit(phase=op, rows=opts.rows, n=opts.n, **percentiles(samples))
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            await asyncio.wait_for(daemon.wait(), 60)
        log.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
