"""Connections under pressure (issue 14): jobs and socket requests holding every pooled
connection cannot stall the engine, their own waits are bounded, and an enqueue after a parent
whose row another session holds gives up after a lock timeout instead of keeping a connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from addicted_jobs.app import warn_pool_exhaustion
from addicted_jobs.control.ops import EngineOps
from addicted_jobs.control.server import Peer
from addicted_jobs.db import Database, _init_connection
from addicted_jobs.jobs import JobContext, JobSpec, NoArgs, Registry, store
from addicted_jobs.jobs.engine import Engine, EngineConfig
from addicted_jobs.jobs.store import CLIENT_LOCK_TIMEOUT_S, NewJob, ParentLocked
from addicted_jobs.pools import PoolExhausted
from addicted_jobs.settings import load_settings
from tests.support import wait_until

ACQUIRE_TIMEOUT_S = 5.0
PEER = Peer(pid=None, uid=None, gid=None)


@pytest.fixture
async def database(db_dsn: str, tmp_path: Path) -> AsyncIterator[Database]:
    """The daemon's Database (its two pools), as configured by default."""
    db = Database(db_dsn, tmp_path, pool_max=10, acquire_timeout=ACQUIRE_TIMEOUT_S)
    await db.start()
    yield db
    await db.close()


async def started_engine(db: Database, registry: Registry, concurrency: int) -> Engine:
    assert db.pool is not None
    engine = Engine(
        db.pool,
        registry,
        EngineConfig(concurrency={"default": concurrency}, fallback_poll_s=1.0),
        connect=db.connect,
        engine_pool=db.engine_pool,
    )
    await engine.recover()
    await engine.start()
    return engine


async def succeeded(pool: asyncpg.Pool, name: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM jobs.jobs WHERE name = $1 AND state = 'succeeded'", name
        )
    )


async def test_jobs_holding_every_pooled_connection_do_not_stall_the_queues(
    database: Database, db_dsn: str
) -> None:
    assert database.pool is not None
    pool = database.pool
    release = asyncio.Event()
    holding = 0

    async def hog(ctx: JobContext, args: NoArgs) -> None:
        nonlocal holding
        async with pool.acquire():
            holding += 1
            await release.wait()

    async def quick(ctx: JobContext, args: NoArgs) -> None:
        return None

    registry = Registry()
    registry.register(JobSpec("hog", "default", NoArgs, hog))
    registry.register(JobSpec("quick", "default", NoArgs, quick))
    engine = await started_engine(database, registry, concurrency=30)
    client = await asyncpg.connect(db_dsn)
    await _init_connection(client)
    try:
        await store.enqueue(client, [NewJob("hog", "default", {}, 1)] * 10)
        await wait_until(lambda: holding == 10, message="10 jobs holding the 10 connections")
        await store.enqueue(client, [NewJob("quick", "default", {}, 1)] * 20)
        # Claims and status writes go through the engine's own connections.
        await wait_until(lambda: succeeded(client, "quick"), message="quick jobs run")
        await wait_until(
            lambda: _is(succeeded(client, "quick"), 20), message="all 20 quick jobs written"
        )
        # A request through the exhausted pool waits a bounded time and says why.
        started = time.monotonic()
        with pytest.raises(PoolExhausted, match="pool_max"):
            await engine.enqueue("quick")
        assert time.monotonic() - started < ACQUIRE_TIMEOUT_S + 3.0
        # ping still reaches the database (through the engine's connections) and says why.
        ping = await EngineOps(engine, version="t", uptime=lambda: 1.0).ping(NoArgs(), PEER)
        assert (
            ping["database"] == "ok" and ping["connections"] == "all 10 pooled connections in use"
        )
        release.set()
        await wait_until(lambda: _is(succeeded(client, "hog"), 10), message="hogs done")
        assert (await engine.enqueue("quick")).created
    finally:
        release.set()
        await client.close()
        await engine.stop(grace=2.0)


async def _is(value: object, expected: int) -> bool:
    assert asyncio.iscoroutine(value)
    return await value == expected


async def test_enqueues_after_a_locked_parent_give_up_and_free_their_connections(
    database: Database, db_dsn: str
) -> None:
    async def quick(ctx: JobContext, args: NoArgs) -> None:
        return None

    registry = Registry()
    registry.register(JobSpec("quick", "default", NoArgs, quick))
    engine = await started_engine(database, registry, concurrency=10)
    operator = await asyncpg.connect(db_dsn)
    await _init_connection(operator)
    observer = await asyncpg.connect(db_dsn)  # outside a transaction: fresh activity each time
    try:
        parent = (await engine.enqueue("quick", delay=3600)).id
        await store.enqueue(operator, [NewJob("quick", "default", {}, 1, delay=0.5)] * 20)
        tx = operator.transaction()
        await tx.start()
        await operator.execute("SELECT 1 FROM jobs.jobs WHERE id = $1 FOR UPDATE", parent)
        waiters = [asyncio.create_task(engine.enqueue("quick", after=parent)) for _ in range(15)]
        await wait_until(
            lambda: observer.fetchval(
                "SELECT count(*) >= 10 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            ),
            message="10 enqueues waiting on the row lock",
        )
        started = time.monotonic()
        unrelated = await engine.enqueue("quick")  # waits for a connection a waiter gives up
        assert unrelated.created
        assert time.monotonic() - started < CLIENT_LOCK_TIMEOUT_S + 3.0
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(o, ParentLocked) for o in outcomes), outcomes
        assert f"job {parent} is locked by another session" in str(outcomes[0])
        # Meanwhile the 20 due jobs ran, and the refused continuations wrote nothing.
        await wait_until(lambda: _is(succeeded(operator, "quick"), 21), message="due jobs ran")
        await tx.rollback()
        assert (
            await operator.fetchval("SELECT count(*) FROM jobs.jobs WHERE parent_id = $1", parent)
            == 0
        )
    finally:
        await operator.close()
        await observer.close()
        await engine.stop(grace=2.0)


def test_start_up_warns_when_queue_concurrency_can_exhaust_the_pool(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    # The defaults never warn: the pool follows the queues' concurrency.
    config.write_text("")
    defaults = load_settings(config)
    with capture_logs() as logs:
        warn_pool_exhaustion(defaults)
    assert not [e for e in logs if "exhaust the connection pool" in e["event"]]
    assert defaults.pool_size() > defaults.concurrency_total() == 34
    # An explicit pool_max below the queues' total warns, naming both settings and values.
    config.write_text("[database]\npool_max = 10\n")
    with capture_logs() as logs:
        warn_pool_exhaustion(load_settings(config))
    [warning] = [e for e in logs if "exhaust the connection pool" in e["event"]]
    assert "[database] pool_max is 10" in warning["event"]
    assert "[queues.*] concurrency adds up to 34" in warning["event"]
    assert warning["pool_max"] == 10 and warning["queues_concurrency_total"] == 34
    config.write_text("[database]\npool_max = 200\n")
    with capture_logs() as logs:
        warn_pool_exhaustion(load_settings(config))
    assert not [e for e in logs if "exhaust the connection pool" in e["event"]]


async def test_every_row_lock_wait_for_a_client_gives_up_while_the_lock_is_held(
    db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    [held] = await store.enqueue(db_pool, [NewJob("noop", "default", {}, 1, delay=3600)])
    operator = await asyncpg.connect(db_dsn)
    try:
        async with operator.transaction():
            await operator.execute("SELECT 1 FROM jobs.jobs WHERE id = $1 FOR UPDATE", held.id)
            # Operator actions on the locked job give up instead of keeping a connection.
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                await store.retry(db_pool, held.id)
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                await store.cancel(db_pool, held.id)
            # Another session inserting a unique key: an enqueue of the same key gives up too.
            await operator.execute(
                "INSERT INTO jobs.jobs (name, queue, state, max_attempts, unique_key, unique_until)"
                " VALUES ('noop', 'default', 'ready', 1, 'k', now() + interval '1 hour')"
            )
            keyed = NewJob("noop", "default", {}, 1, unique_key="k", unique_ttl=60)
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                await store.enqueue(db_pool, [keyed])
            # Inside a caller's transaction: bounded as well, and only the enqueue is undone;
            # the caller's transaction goes on with its own lock_timeout.
            async with db_pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = '17s'")
                with pytest.raises(ParentLocked):
                    await store.enqueue(conn, [NewJob("noop", "default", {}, 1, after=held.id)])
                assert await conn.fetchval("SHOW lock_timeout") == "17s"
                [plain] = await store.enqueue(conn, [NewJob("noop", "default", {}, 1)])
                assert plain.created
            assert operator.is_in_transaction()  # the lock was held throughout
    finally:
        await operator.close()
    assert (await store.retry(db_pool, held.id)) is not None  # free again: it works
