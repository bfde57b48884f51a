"""Issue 20, "Scale and time / Soak": jobs in continuous flow through one daemon: a steady enqueue
with bursts, finished jobs pruned at a short retention, stock autovacuum, and one transaction
holding its snapshot open for `--hold-s` seconds in the middle. Prints a JSON line per
`--report-s` window (finished jobs/s, claim latency p50/p99 = started_at - run_at over the jobs seen
finishing in the window, ready backlog,
jobs.jobs size with indexes) and a summary: throughput of the last 10% of the jobs against the
first 10% (target >= 0.90), latency p99 of each (target: no growth), and the table's size at the
end against its size after the first 10% (target <= 2x).

    python bench/soak.py [--jobs 5000000] [--rate 6000] [--burst 60000] [--burst-every-s 60]
                         [--retention-s 60] [--hold-s 60] [--daemon-python PATH]
                         [--private-server DIR]

Pruning: the daemon prunes once an hour; here the bench runs the engine's own prune statement
(store.prune) every 10 s with the short retention, which is what a short `prune_every_s` would do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent / "shared" / "bench" / "peers"), str(HERE.parent)]

import asyncpg
import common
from engine_backlog import Daemon, emit, wait_for

from addicted_jobs import logs
from addicted_jobs.db import _init_connection
from addicted_jobs.embedded_pg import EmbeddedPostgres
from addicted_jobs.jobs import store
from addicted_jobs.jobs.store import NewJob

_WINDOW = """
SELECT count(*)::int AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - run_at) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - run_at) AS p99
FROM jobs.jobs
WHERE state IN ('succeeded', 'failed', 'deleted') AND finished_at > $1 AND finished_at <= $2
"""
_BACKLOG = (
    "SELECT count(*) FROM jobs.jobs WHERE queue = 'default' AND state IN ('ready', 'scheduled')"
)
_RUNNING = "SELECT count(*) FROM jobs.jobs WHERE queue = 'default' AND state = 'running'"
_SIZE = "SELECT pg_total_relation_size('jobs.jobs')"


async def feed(pool: asyncpg.Pool, args: argparse.Namespace, sent: list[int]) -> None:
    """Enqueue `args.rate` jobs/s in 0.1 s slices, plus `args.burst` jobs every burst_every_s."""
    slice_jobs = max(int(args.rate / 10), 1)
    next_burst = time.monotonic() + args.burst_every_s
    tick = time.monotonic()
    while sent[0] < args.jobs:
        n = min(slice_jobs, args.jobs - sent[0])
        if time.monotonic() >= next_burst:
            n = min(n + args.burst, args.jobs - sent[0])
            next_burst += args.burst_every_s
        # In slices, each counted the moment it is written: the finished count is sent minus
        # what waits or runs, so a burst must not be seen in the table before it is in `sent`.
        for low in range(0, n, 2_000):
            chunk = min(2_000, n - low)
            sent[0] += chunk
            await store.enqueue(pool, [NewJob("noop", "default", {}, 1)] * chunk)
        tick += 0.1
        await asyncio.sleep(max(tick - time.monotonic(), 0))


async def prune(pool: asyncpg.Pool, retention_s: float) -> None:
    while True:
        await asyncio.sleep(10)
        await store.prune(pool, retention_s / 86400)


async def hold(dsn: str, seconds: float) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read"):
            await conn.fetchval("SELECT count(*) FROM jobs.queues")  # takes the snapshot
            emit({"phase": "soak", "event": "snapshot held", "seconds": seconds})
            await asyncio.sleep(seconds)
        emit({"phase": "soak", "event": "snapshot released"})
    finally:
        await conn.close()


class Server:
    """Where the soak's database lives: the harness's PostgreSQL, or with `--private-server DIR`
    a server of our own (the pgserver binaries the daemon embeds) with autovacuum as PostgreSQL
    ships it: this machine's shared server runs with autovacuum off (its CI configuration),
    which would leave every dead row of the soak in place."""

    def __init__(self, private: Path | None) -> None:
        self.embedded = EmbeddedPostgres(private) if private is not None else None
        self.socket_dir: str | None = None

    def start(self) -> None:
        if self.embedded is not None:
            self.embedded.start()
            self.socket_dir = str(self.embedded.socket_dir)

    def dsn(self, db: str) -> str:
        if self.socket_dir is None:
            return common.dsn(db)
        return f"postgresql://postgres@/{db}?host={self.socket_dir}"

    async def create_db(self) -> str:
        if self.socket_dir is None:
            return await common.create_db("ajsoak")
        name = f"bench_ajsoak_{os.getpid()}"
        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return name

    async def settings(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            rows = await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
                ["autovacuum", "autovacuum_naptime", "shared_buffers", "server_version"],
            )
        finally:
            await conn.close()
        return {r["name"]: r["setting"] for r in rows}

    async def stop(self, db: str) -> None:
        if self.embedded is None:
            await common.drop_db(db)
        else:
            await asyncio.to_thread(self.embedded.stop)


async def soak(args: argparse.Namespace) -> None:
    server = Server(args.private_server)
    await asyncio.to_thread(server.start)
    emit({"phase": "soak", "server": await server.settings()})
    db = await server.create_db()
    daemon = Daemon(args.daemon_python, db, server.dsn(db))
    pool = await asyncpg.create_pool(server.dsn(db), min_size=2, max_size=4, init=_init_connection)
    assert pool is not None
    tasks: list[asyncio.Task[Any]] = []
    try:
        daemon.start()
        async with pool.acquire() as conn:
            await wait_for(conn, "SELECT to_regclass('jobs.recurring') IS NOT NULL", 120)
        sent = [0]
        tasks = [
            asyncio.create_task(feed(pool, args, sent)),
            asyncio.create_task(prune(pool, args.retention_s)),
        ]
        windows: list[dict[str, Any]] = []
        done, held, size_tenth = 0, False, None
        mark = await pool.fetchval("SELECT now() - interval '1 second'")
        t0 = time.monotonic()
        while done < args.jobs:
            await asyncio.sleep(args.report_s)
            for task in tasks:  # the feeder, pruner or holder failed: stop with its error
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise RuntimeError("a soak task failed") from task.exception()
            # A finish stamps finished_at when its transaction starts and is seen at its commit:
            # windows end a second back so no finish lands behind a window already counted.
            now = await pool.fetchval("SELECT now() - interval '1 second'")
            row = await pool.fetchrow(_WINDOW, mark, now)
            seconds = (now - mark).total_seconds()
            mark = now
            # Finished = enqueued - still waiting or running: exact whatever the pruner removed
            # (a finish that commits late can miss its latency window, never this count).
            backlog = await pool.fetchval(_BACKLOG)
            finished = sent[0] - backlog - await pool.fetchval(_RUNNING)
            n, done = finished - done, finished
            window = {
                "phase": "soak",
                "t_s": round(time.monotonic() - t0, 1),
                "done": done,
                "jobs_per_s": round(n / seconds, 1),
                "latency_p50_ms": _ms(row["p50"]),
                "latency_p99_ms": _ms(row["p99"]),
                "latency_sample": row["n"],
                "backlog": backlog,
                "table_mib": round(await pool.fetchval(_SIZE) / 2**20, 1),
                "n": n,
                "seconds": seconds,
            }
            windows.append(window)
            emit(window)
            if size_tenth is None and done >= args.jobs // 10:
                size_tenth = window["table_mib"]
            if not held and done >= args.jobs // 2:
                held = True
                tasks.append(asyncio.create_task(hold(server.dsn(db), args.hold_s)))
        emit(_summary(windows, args.jobs, size_tenth))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.close()
        daemon.stop()
        await server.stop(db)


def _ms(interval: Any) -> float | None:
    return None if interval is None else round(interval.total_seconds() * 1000, 2)


def _slice(windows: list[dict[str, Any]], low: int, high: int) -> dict[str, Any]:
    """Throughput and window p99s over the windows whose jobs overlap [low, high)."""
    picked = [w for w in windows if w["n"] and w["done"] - w["n"] < high and w["done"] > low]
    jobs = sum(w["n"] for w in picked)
    seconds = sum(w["seconds"] for w in picked)
    p99s = [w["latency_p99_ms"] for w in picked if w["latency_p99_ms"] is not None]
    return {
        "jobs_per_s": round(jobs / seconds, 1) if seconds else None,
        "latency_p99_ms_median_window": round(statistics.median(p99s), 2) if p99s else None,
        "latency_p99_ms_worst_window": max(p99s, default=None),
    }


def _summary(windows: list[dict[str, Any]], jobs: int, size_tenth: float | None) -> dict[str, Any]:
    first, last = _slice(windows, 0, jobs // 10), _slice(windows, jobs - jobs // 10, jobs + 1)
    end_size = windows[-1]["table_mib"] if windows else None
    return {
        "phase": "soak",
        "summary": True,
        "date": time.strftime("%Y-%m-%d"),
        "jobs": jobs,
        "first_tenth": first,
        "last_tenth": last,
        "throughput_ratio_last_to_first": (
            round(last["jobs_per_s"] / first["jobs_per_s"], 2)
            if first["jobs_per_s"] and last["jobs_per_s"]
            else None
        ),
        "table_mib_after_first_tenth": size_tenth,
        "table_mib_at_end": end_size,
        "size_ratio": round(end_size / size_tenth, 2) if end_size and size_tenth else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5_000_000)
    parser.add_argument("--rate", type=float, default=6000)
    parser.add_argument("--burst", type=int, default=60_000)
    parser.add_argument("--burst-every-s", type=float, default=60)
    parser.add_argument("--retention-s", type=float, default=60)
    parser.add_argument("--hold-s", type=float, default=60)
    parser.add_argument("--report-s", type=float, default=5)
    parser.add_argument("--daemon-python", default=sys.executable)
    parser.add_argument(
        "--private-server",
        type=Path,
        help="run PostgreSQL of our own in DIR (autovacuum as shipped), not the harness's server",
    )
    logs.configure("warning", "json", sys.stderr)  # stdout carries only the JSON result lines
    asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    main()
