"""Drains under a long transaction elsewhere (issue 14, part 2): the daemon (a subprocess, as
deployed) drains `--jobs` noop jobs `--drains` times while another session holds a REPEATABLE
READ snapshot open, so vacuum can remove none of the dead rows each drain leaves. Prints one JSON
line per drain (the bulk enqueue's seconds, and the drain's: first start to last finish, read
from the table) and a summary per daemon source tree, so a checkout from before the claim's lower bounds
can be measured beside this one in the same run:

    git archive <commit> | tar -x -C /tmp/before
    python bench/long_snapshot.py [--jobs 20000] [--drains 4] [--src /tmp/before --src .]
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


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def start_daemon(src: Path, db: str) -> subprocess.Popen[bytes]:
    """`python -m addicted_jobs run` from source tree `src` on database `db`, concurrency 10."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
    env.update(
        {
            "PYTHONPATH": f"{HERE / 'plugins'}:{src}",
            "ADDICTED_JOBS_DATABASE__DSN": common.dsn(db),
            "ADDICTED_JOBS_STATE__DIR": f"/tmp/aj-snapshot-{os.getpid()}",
            "ADDICTED_JOBS_LOG__FORMAT": "json",
            "ADDICTED_JOBS_LOG__LEVEL": "warning",
            "ADDICTED_JOBS_QUEUES__DEFAULT__CONCURRENCY": "10",
            "ADDICTED_JOBS_ENGINE__JOB_MODULES": json.dumps(["bench_jobs"]),
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "addicted_jobs", "run"],
        env=env,
        cwd="/",  # `-m` puts the working directory first on sys.path
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_for(
    conn: asyncpg.Connection, query: str, *args: Any, deadline_s: float = 600
) -> None:
    end = time.monotonic() + deadline_s
    while not await conn.fetchval(query, *args):
        if time.monotonic() > end:
            raise TimeoutError(f"{query!r} still false after {deadline_s} s")
        await asyncio.sleep(0.05)


async def run_tree(src: Path, jobs: int, drains: int) -> dict[str, Any]:
    db = await common.create_db("ajsnapshot")
    daemon = start_daemon(src, db)
    try:
        conn = await asyncpg.connect(common.dsn(db))
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        await wait_for(conn, "SELECT to_regclass('jobs.recurring') IS NOT NULL", deadline_s=120)
        reporting = await asyncpg.connect(common.dsn(db))
        tx = reporting.transaction(isolation="repeatable_read")
        await tx.start()
        await reporting.fetchval("SELECT count(*) FROM jobs.jobs")  # the snapshot is taken
        times: list[float] = []
        for drain in range(1, drains + 1):
            first = await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs.jobs")
            started = time.monotonic()
            results = await store.enqueue(conn, [NewJob("noop", "default", {}, 1)] * jobs)
            enqueue_s = time.monotonic() - started
            # Polled by primary key (the last job is claimed last): a scan of the batch on every
            # poll would compete with the daemon for the two cores.
            await wait_for(
                conn, "SELECT state = 'succeeded' FROM jobs.jobs WHERE id = $1", results[-1].id
            )
            await wait_for(
                conn,
                "SELECT NOT EXISTS (SELECT 1 FROM jobs.jobs WHERE id > $1"
                " AND state NOT IN ('succeeded', 'failed'))",
                first,
            )
            span = await conn.fetchval(
                "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8"
                " FROM jobs.jobs WHERE id > $1",
                first,
            )
            times.append(round(span, 2))
            emit(
                {
                    "phase": "drain_under_snapshot",
                    "src": str(src),
                    "drain": drain,
                    "enqueue_s": round(enqueue_s, 2),
                    "drain_s": times[-1],
                }
            )
        await tx.rollback()
        await reporting.close()
        await conn.close()
        return {
            "phase": "drain_under_snapshot",
            "summary": True,
            "src": str(src),
            "jobs": jobs,
            "drain_s": times,
            "last_to_first": round(times[-1] / times[0], 2),
        }
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        await common.drop_db(db)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--drains", type=int, default=4)
    parser.add_argument("--src", type=Path, action="append", help="daemon source tree (repeat)")
    args = parser.parse_args()
    for src in args.src or [ROOT]:
        emit(await run_tree(src.resolve(), args.jobs, args.drains))


if __name__ == "__main__":
    asyncio.run(main())
