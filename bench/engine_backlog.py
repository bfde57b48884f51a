"""The "backlog after analyse" phase of bench/engine.py (issue 14, part 1): a backlog of noop jobs
drained by the daemon on a never-analysed table, and after ANALYZE took statistics on an empty
queue and on a full one. The claim's plan must not depend on those statistics, so the three drains
should run at the same rate. Prints one JSON line per variant and a summary of ratios to `fresh`.

    python bench/engine_backlog.py [--jobs 100000] [--warm 20000] [--daemon-python PATH]

The drain rate is jobs / (last finished_at - first started_at) of the backlog, read from the
table, so the daemon's start-up is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
sys.path[:0] = [str(PEERS), str(ROOT)]

import asyncpg
import common

from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob

VARIANTS = ("fresh", "analysed_empty", "analysed_full")


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


class Daemon:
    """`python -m addicted_jobs run` on one database, stopped with SIGTERM."""

    def __init__(self, python: str, db: str, dsn: str | None = None) -> None:
        """`dsn` overrides the harness's server (bench/soak.py's private one)."""
        self.python, self.db = python, db
        self.dsn = dsn or common.dsn(db)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
        env.update(
            {
                "PYTHONPATH": str(HERE / "plugins")
                if self.python != sys.executable
                else f"{HERE / 'plugins'}:{ROOT}",
                "ADDICTED_JOBS_DATABASE__DSN": self.dsn,
                "ADDICTED_JOBS_STATE__DIR": f"/tmp/aj-backlog-{os.getpid()}",
                "ADDICTED_JOBS_LOG__FORMAT": "json",
                "ADDICTED_JOBS_LOG__LEVEL": "warning",
                "ADDICTED_JOBS_QUEUES__DEFAULT__CONCURRENCY": "10",
                "ADDICTED_JOBS_ENGINE__JOB_MODULES": json.dumps(["bench_jobs"]),
            }
        )
        self.proc = subprocess.Popen(
            [self.python, "-m", "addicted_jobs", "run"],
            env=env,
            cwd="/",  # `-m` puts the working directory first on sys.path: not this tree's daemon
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None


async def wait_for(conn: asyncpg.Connection, query: str, deadline_s: float = 600.0) -> None:
    """Poll `query` until it returns true (the daemon is a separate process)."""
    end = time.monotonic() + deadline_s
    while not await conn.fetchval(query):
        if time.monotonic() > end:
            raise TimeoutError(f"{query!r} still false after {deadline_s} s")
        await asyncio.sleep(0.2)


DRAINED = "SELECT NOT EXISTS (SELECT 1 FROM jobs.jobs WHERE state NOT IN ('succeeded', 'failed'))"


async def enqueue(conn: asyncpg.Connection, n: int) -> None:
    for start in range(0, n, 20_000):
        await store.enqueue(conn, [NewJob("noop", "default", {}, 1)] * min(20_000, n - start))


async def one_variant(python: str, variant: str, jobs: int, warm: int) -> dict[str, Any]:
    db = await common.create_db("ajbacklog")
    daemon = Daemon(python, db)
    try:
        daemon.start()  # applies its own schema migrations
        conn = await asyncpg.connect(common.dsn(db))
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        await wait_for(conn, "SELECT to_regclass('jobs.recurring') IS NOT NULL", 120)
        if variant == "fresh":
            # Never analysed: autovacuum must not take statistics behind the bench's back.
            await conn.execute("ALTER TABLE jobs.jobs SET (autovacuum_enabled = off)")
        else:
            await enqueue(conn, warm)
            await wait_for(conn, DRAINED)
            if variant == "analysed_empty":
                await conn.execute("ANALYZE jobs.jobs")
        daemon.stop()  # the backlog is written while nothing claims (a paused queue)
        first_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs.jobs")
        await enqueue(conn, jobs)
        if variant == "analysed_full":
            await conn.execute("ANALYZE jobs.jobs")
        daemon.start()
        await wait_for(conn, DRAINED)
        span = await conn.fetchval(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8"
            " FROM jobs.jobs WHERE id > $1",
            first_id,
        )
        await conn.close()
        return {
            "phase": "backlog_after_analyse",
            "variant": variant,
            "jobs": jobs,
            "drain_s": round(span, 2),
            "jobs_per_s": round(jobs / span, 1),
        }
    finally:
        daemon.stop()
        await common.drop_db(db)


async def backlog_after_analyse(python: str, jobs: int, warm: int) -> dict[str, Any]:
    """Run the three variants; returns the summary line (ratios of each to `fresh`)."""
    results: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        results[variant] = await one_variant(python, variant, jobs, warm)
        emit(results[variant])
    fresh = results["fresh"]["jobs_per_s"]
    return {
        "phase": "backlog_after_analyse",
        "summary": True,
        "daemon_python": python,
        **{f"ratio_{v}_to_fresh": round(results[v]["jobs_per_s"] / fresh, 2) for v in VARIANTS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--warm", type=int, default=20_000)
    parser.add_argument("--daemon-python", default=sys.executable)
    args = parser.parse_args()
    emit(asyncio.run(backlog_after_analyse(args.daemon_python, args.jobs, args.warm)))


if __name__ == "__main__":
    main()
