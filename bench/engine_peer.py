"""addicted-jobs as a peer of the shared harness (../shared/bench/peers/harness.py): the same
phases, timing and CPU accounting as pgqueuer and procrastinate. Prints one JSON line.

    python bench/engine_peer.py [--phases bulk,single,drain,latency] [--n 20000]
"""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import json
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import asyncpg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
# bench/engine.py passes a production install of the daemon; alone, this runs the dev install.
DAEMON_PYTHON = os.environ.get("AJ_BENCH_DAEMON_PYTHON", sys.executable)
sys.path[:0] = [str(PEERS), str(ROOT)]

import common
import harness

from addicted_jobs import logs
from addicted_jobs.db import _init_connection, apply_migrations
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob


class AddictedJobsPeer:
    name = "addicted-jobs"
    short = "aj"
    variants: ClassVar[dict[str, str]] = {
        "c10": "addicted-jobs run, queue default at concurrency 10, full engine, JSON log line per job"
    }
    default_variant = "c10"

    def __init__(self) -> None:
        self.conn: asyncpg.Connection | None = None
        self.tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"aj-bench-{os.getpid()}"

    def versions(self) -> dict[str, str]:
        return {
            "addicted-jobs": md.version("addicted-jobs"),
            "asyncpg": md.version("asyncpg"),
            "daemon_python": DAEMON_PYTHON,
        }

    async def install(self, db: str) -> None:
        conn = await asyncpg.connect(common.dsn(db))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    async def open_client(self, db: str) -> None:
        self.conn = await asyncpg.connect(common.dsn(db))
        await _init_connection(self.conn)

    async def close_client(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        self.conn = None

    async def enqueue_bulk(self, n: int) -> None:
        assert self.conn is not None
        results = await store.enqueue(self.conn, [NewJob("noop", "default", {}, 1)] * n)
        assert len(results) == n

    async def enqueue_one(self, i: int) -> None:
        assert self.conn is not None
        await store.enqueue(self.conn, [NewJob("bench_stamp", "default", {"i": i}, 1)])

    async def remaining(self, conn: asyncpg.Connection) -> int:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM jobs.jobs WHERE state NOT IN ('succeeded', 'failed', 'deleted')"
            )
        )

    async def succeeded(self, conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM jobs.jobs WHERE state = 'succeeded'"))

    async def completion_window(self, conn: asyncpg.Connection) -> tuple[float, float]:
        row = await conn.fetchrow(
            "SELECT extract(epoch FROM min(finished_at))::float8 AS a, extract(epoch FROM max(finished_at))::float8 AS b"
            " FROM jobs.jobs WHERE state = 'succeeded'"
        )
        return row["a"], row["b"]

    async def completion_histogram(self, conn: asyncpg.Connection) -> list[int]:
        rows = await conn.fetch(
            "SELECT floor(extract(epoch FROM finished_at))::bigint AS s, count(*) AS c FROM jobs.jobs"
            " WHERE state = 'succeeded' GROUP BY 1 ORDER BY 1"
        )
        if not rows:
            return []
        first, last = rows[0]["s"], rows[-1]["s"]
        dense = dict.fromkeys(range(first, last + 1), 0)
        dense.update({r["s"]: r["c"] for r in rows})
        return list(dense.values())

    def worker_argv(self, variant: str) -> list[str]:
        nodes = int(os.environ.get("AJ_BENCH_NODES", "1"))
        if nodes > 1:  # several daemons with [cluster] enabled (issue 19)
            return [sys.executable, str(HERE / "plugins" / "nodes.py"), str(nodes), DAEMON_PYTHON]
        return [DAEMON_PYTHON, "-m", "addicted_jobs", "run"]

    def worker_env(self, db: str, mode: str, lat_out: str | None) -> dict[str, str]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Engine settings may be varied from the outside (ADDICTED_JOBS_ENGINE__CLAIM_BATCH=...).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ADDICTED_JOBS_")
            or k.startswith(("ADDICTED_JOBS_ENGINE__", "ADDICTED_JOBS_CLUSTER__"))
        }
        env.update(
            {
                # With an installed daemon, this tree must not shadow it.
                "PYTHONPATH": str(HERE / "plugins")
                if DAEMON_PYTHON != sys.executable
                else f"{HERE / 'plugins'}:{ROOT}",
                "ADDICTED_JOBS_DATABASE__DSN": common.dsn(db),
                "ADDICTED_JOBS_STATE__DIR": str(self.tmp / mode),
                "ADDICTED_JOBS_LOG__FORMAT": "json",
                "ADDICTED_JOBS_QUEUES__DEFAULT__CONCURRENCY": "10",
                "ADDICTED_JOBS_ENGINE__JOB_MODULES": json.dumps(["bench_jobs"]),
            }
        )
        env.pop("BENCH_LAT_OUT", None)
        if lat_out:
            env["BENCH_LAT_OUT"] = lat_out
        return env


def main() -> None:
    logs.configure("warning", "json", sys.stderr)  # stdout carries the one JSON result line
    result: dict[str, Any] = asyncio.run(harness.run(AddictedJobsPeer(), sys.argv[1:]))
    common.emit(result)


if __name__ == "__main__":
    main()
