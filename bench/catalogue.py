"""Catalogue benchmark against the sandbox on loopback (served by a child process, so its CPU is
not ours): a full refresh_available_shows of 10,000 shows (TMDB excluded), then
refresh_single_show of 200 shows x 5 seasons x 10 episodes x 5 subtitles through the engine,
without a politeness limit (our CPU and SQL) and with one (the upstream's pace). JSON lines.

    python bench/catalogue.py [--shows 10000] [--refresh-shows 200] [--rps 2] [--polite-shows 20]

Targets: the 10,000-show sync under 10 s; the refresh bound by the politeness limit.
"""

from __future__ import annotations

import os
import sys

# Run as `python bench/catalogue.py`, this folder leads sys.path, and bench/socket.py there
# would shadow the standard `socket` module.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import asyncpg

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.catalog.languages import culture_name
from addicted_jobs.db import POOL_OPTIONS, _init_connection, apply_migrations
from addicted_jobs.jobs import JobRequest, Registry
from addicted_jobs.jobs.engine import Engine, EngineConfig
from addicted_jobs.sandbox import Sandbox
from addicted_jobs.sandbox.data import LANGUAGES, Catalogue, FakeEpisode, FakeSubtitle
from addicted_jobs.settings import Addic7edSettings, RefreshSettings
from addicted_jobs.tasks.catalogue import register_catalogue_jobs
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.resilience import resilience_of

SEASONS, EPISODES, SUBTITLES = 5, 10, 5
QUEUES = {"default": 10, "fetch-subtitles": 10, "refresh-one-show": 6}


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class FixedShape(Catalogue):
    """Every show: 5 seasons of 10 episodes with 5 subtitles each (5 languages)."""

    def seasons(self, show_id: int) -> list[int]:
        return list(range(1, SEASONS + 1)) if self.has_show(show_id) else []

    def episodes(self, show_id: int, season: int) -> tuple[FakeEpisode, ...] | None:
        if season not in self.seasons(show_id):
            return None
        out = []
        for number in range(1, EPISODES + 1):
            episode_id = show_id * 100_000 + season * 1000 + number
            subs = tuple(
                FakeSubtitle(lang_id, label, "NTb+playWEB", 0, 100.0, False, False, True,
                             f"/updated/{lang_id}/{episode_id}/0", False)
                for lang_id, label in LANGUAGES[:SUBTITLES]
            )  # fmt: skip
            out.append(FakeEpisode(season, number, f"Episode {number}", episode_id, subs))
        return tuple(out)


async def serve(shows: int, shape: bool) -> None:
    sandbox = Sandbox(shows=shows)
    if shape:
        sandbox.catalogue = FixedShape(shows, sandbox.seed)
    print(await sandbox.start(), flush=True)
    await asyncio.Event().wait()


async def upstream(shows: int, shape: bool) -> tuple[asyncio.subprocess.Process, str]:
    args = [__file__, "--serve", str(shows)] + (["--shape"] if shape else [])
    child = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    return child, (await child.stdout.readline()).decode().strip()


class Database:
    """A fresh migrated database per phase, every query counted."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.name = f"aj_bench_catalogue_{os.getpid()}"
        self.queries: Counter[str] = Counter()

    def dsn(self) -> str:
        base, _, query = self.admin.partition("?")
        return f"{base.rpartition('/')[0]}/{self.name}" + (f"?{query}" if query else "")

    async def create(self) -> asyncpg.Pool:
        admin = await asyncpg.connect(self.admin)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{self.name}"')
        await admin.close()
        conn = await asyncpg.connect(self.dsn())
        await apply_migrations(conn)
        await conn.close()

        async def init(conn: asyncpg.Connection) -> None:
            await _init_connection(conn)
            conn.add_query_logger(self._count)

        return await asyncpg.create_pool(
            self.dsn(),
            min_size=2,
            max_size=20,
            init=init,
            **POOL_OPTIONS,  # as the daemon builds its pool
        )

    def _count(self, record: Any) -> None:
        query = record.query
        if "jobs." in query or "pg_catalog" in query or "jit" in query:
            kind = "engine"  # the engine's own SQL, and asyncpg's type introspection
        else:
            kind = "catalogue"
        self.queries[kind] += 1

    async def drop(self) -> None:
        admin = await asyncpg.connect(self.admin)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await admin.close()


async def engine_for(db: Database, pool: asyncpg.Pool, url: str, rps: float) -> Engine:
    addic7ed = Addic7edClient(
        url,
        requests_per_second=rps,
        language_code=culture_name,
        **resilience_of(Addic7edSettings()),
    )
    credentials = CredentialPool(pool)
    await credentials.add("PHPSESSID=bench")
    registry = Registry()
    register_catalogue_jobs(
        registry, Resources(pool, addic7ed, None, RefreshSettings(), credentials)
    )

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(db.dsn())
        await _init_connection(conn)
        return conn

    engine = Engine(pool, registry, EngineConfig(concurrency=QUEUES, fallback_poll_s=0.2), connect)
    await engine.start()
    return engine


async def until_done(pool: asyncpg.Pool, name: str, count: int) -> None:
    while (
        await pool.fetchval(
            "SELECT count(*) FROM jobs.jobs WHERE name = $1 AND state = 'succeeded'", name
        )
        < count
    ):
        failed = await pool.fetchval("SELECT count(*) FROM jobs.jobs WHERE state = 'failed'")
        if failed:
            raise RuntimeError(f"{failed} job(s) failed")
        await asyncio.sleep(0.02)


async def bench_sync(admin: str, shows: int) -> None:
    child, url = await upstream(shows, shape=False)
    db = Database(admin)
    pool = await db.create()
    try:
        probe = Addic7edClient(url, **resilience_of(Addic7edSettings()))
        started = time.perf_counter()
        await probe.get_shows("x")
        fetch_s = time.perf_counter() - started
        await probe.aclose()
        engine = await engine_for(db, pool, url, 0.0)
        for run in ("first", "again"):
            db.queries.clear()
            cpu, started = time.process_time(), time.perf_counter()
            await engine.enqueue("refresh_available_shows")
            done = 1 if run == "first" else 2
            await until_done(pool, "refresh_available_shows", done)
            wall = time.perf_counter() - started
            created = await pool.fetchval("SELECT count(*) FROM tv_shows")
            emit(
                bench="refresh_available_shows", run=run, shows=shows, created=created,
                wall_s=round(wall, 3), cpu_s=round(time.process_time() - cpu, 3),
                fetch_and_parse_s=round(fetch_s, 3),
                rows_per_s=round(2 * created / wall) if run == "first" else 0,
                catalogue_queries=db.queries["catalogue"], target_s=10, ok=wall < 10,
            )  # fmt: skip
        await engine.stop(grace=5)
    finally:
        await pool.close()
        await db.drop()
        child.kill()
        await child.wait()


async def bench_refresh(admin: str, shows: int, rps: float, label: str) -> None:
    child, url = await upstream(shows, shape=True)
    db = Database(admin)
    pool = await db.create()
    try:
        engine = await engine_for(db, pool, url, rps)
        await engine.enqueue("refresh_available_shows")
        await until_done(pool, "refresh_available_shows", 1)
        ids = [r["id"] for r in await pool.fetch("SELECT id FROM tv_shows ORDER BY id")]
        db.queries.clear()
        sandbox_cpu = cpu_of(child.pid)
        cpu, started = time.process_time(), time.perf_counter()
        await engine.enqueue_many([JobRequest("refresh_single_show", {"show_id": i}) for i in ids])
        await until_done(pool, "refresh_single_show", len(ids))
        wall = time.perf_counter() - started
        cpu_s = time.process_time() - cpu
        sandbox_cpu = cpu_of(child.pid) - sandbox_cpu
        await until_done(pool, "cleanup_empty_seasons", len(ids))
        counts = {
            t: await pool.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("seasons", "episodes", "subtitles", "episode_external_ids")
        }
        rows = sum(counts.values())
        requests = len(ids) * (1 + SEASONS)
        floor = requests / rps if rps else 0.0
        emit(
            bench="refresh_single_show", run=label, shows=len(ids), rows=counts,
            wall_s=round(wall, 3), cpu_s=round(cpu_s, 3), cpu_share=round(cpu_s / wall, 3),
            sandbox_cpu_s=round(sandbox_cpu, 3),
            rows_per_s=round(rows / wall), upstream_requests=requests,
            requests_per_s=round(requests / wall, 1), politeness_rps=rps,
            politeness_floor_s=round(floor, 1),
            at_upstream_pace=round(floor / wall, 3) if rps else None,
            queries_per_show=round(db.queries["catalogue"] / len(ids), 1),
        )  # fmt: skip
        await engine.stop(grace=5)
    finally:
        await pool.close()
        await db.drop()
        child.kill()
        await child.wait()


def cpu_of(pid: int | None) -> float:
    """User + system CPU seconds of a process (the sandbox child), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def admin_dsn() -> str:
    return os.environ.get("TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


async def main(args: argparse.Namespace) -> None:
    if args.serve:
        await serve(args.serve, args.shape)
        return
    await bench_sync(admin_dsn(), args.shows)
    await bench_refresh(admin_dsn(), args.refresh_shows, 0.0, "unlimited")
    if args.polite_shows:
        await bench_refresh(admin_dsn(), args.polite_shows, args.rps, "polite")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shows", type=int, default=10_000)
    parser.add_argument("--refresh-shows", type=int, default=200)
    parser.add_argument("--rps", type=float, default=2.0, help="Addic7ed politeness limit")
    parser.add_argument("--polite-shows", type=int, default=20, help="0 skips the polite run")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--shape", action="store_true", help=argparse.SUPPRESS)
    asyncio.run(main(parser.parse_args()))
