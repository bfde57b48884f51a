"""A minimal daemon for crash tests: the engine with the catalogue jobs on a given database and
sandbox, until SIGTERM (or SIGKILL). Prints READY once it claims work.

    python -m tests.support.catalogue_runner --dsn DSN --addic7ed URL [--tmdb URL --tmdb-key K]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import asyncpg

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.db import _init_connection
from addicted_jobs.jobs import Registry
from addicted_jobs.jobs.engine import Engine, EngineConfig
from addicted_jobs.settings import DEFAULT_CONCURRENCY, RefreshSettings, TmdbSettings
from addicted_jobs.tasks.catalogue import register_catalogue_jobs
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.upstream.resilience import resilience_of
from addicted_jobs.upstream.tmdb import TmdbClient
from tests.support.catalogue import addic7ed_client

QUEUES = dict(DEFAULT_CONCURRENCY)


async def run(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=10, init=_init_connection)
    addic7ed = addic7ed_client(args.addic7ed)
    tmdb = (
        TmdbClient(args.tmdb, args.tmdb_key, **resilience_of(TmdbSettings())) if args.tmdb else None
    )
    resources = Resources(pool, addic7ed, tmdb, RefreshSettings(), CredentialPool(pool))
    registry = Registry()
    register_catalogue_jobs(registry, resources)

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(args.dsn)
        await _init_connection(conn)
        return conn

    engine = Engine(
        pool, registry, EngineConfig(concurrency=QUEUES, fallback_poll_s=0.5), connect=connect
    )
    await engine.recover()
    await engine.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await engine.stop(grace=5.0)
    await addic7ed.aclose()
    if tmdb is not None:
        await tmdb.aclose()
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--addic7ed", required=True)
    parser.add_argument("--tmdb", default="")
    parser.add_argument("--tmdb-key", default="sandbox-key")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
