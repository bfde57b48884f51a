"""Dead and half-open connections (issue 14): the LISTEN and instance-lock connections behind a
proxy that silently stops forwarding while their server side is killed are noticed within
seconds and replaced; claiming pauses while the lock cannot be proven; and every connection has
TCP keepalives."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from structlog.testing import capture_logs

from addicted_jobs.db import (
    INSTANCE_LOCK,
    LOCK_NAMESPACE,
    POOL_OPTIONS,
    AnotherInstanceRunning,
    Database,
    _init_connection,
)
from addicted_jobs.jobs import JobContext, JobSpec, NoArgs, Registry
from addicted_jobs.jobs.engine import Engine, EngineConfig
from tests.plugins.halfopen_proxy import HalfOpenProxy
from tests.support import wait_until
from tests.support.engine import engine_on


async def test_silent_listen_and_lock_connections_are_replaced_and_claims_pause(
    db_dsn: str, tmp_path: Path, proxy: HalfOpenProxy
) -> None:
    db = Database(db_dsn, tmp_path)
    await db.start()
    # The pools connect directly; LISTEN and the instance lock through the proxy.
    target = urlsplit(db_dsn)
    db.dsn = db_dsn.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}", 1)
    await db.take_instance_lock()
    ran = asyncio.Event()

    async def job(ctx: JobContext, args: NoArgs) -> None:
        ran.set()

    registry = Registry()
    registry.register(JobSpec("job", "default", NoArgs, job))
    # No fallback poll within the test: only a working LISTEN can wake the dispatcher.
    engine = engine_on(
        db, registry, EngineConfig(concurrency={"default": 2}, fallback_poll_s=600.0)
    )
    await engine.start()
    held: list[bool] = []

    def on_held(yes: bool) -> None:
        held.append(yes)
        engine.claiming_allowed = yes

    keeper = asyncio.create_task(db.keep_instance_lock(on_held, every=0.5))
    admin = await asyncpg.connect(db_dsn)
    try:
        assert db._lock_conn is not None and engine._listener is not None
        for conn in (db._lock_conn, engine._listener):
            sock = conn._transport.get_extra_info("socket")  # type: ignore[attr-defined]
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        lock_pid, listen_pid = db._lock_conn.get_server_pid(), engine._listener.get_server_pid()
        with capture_logs() as logs:
            proxy.blackhole()
            await admin.execute(
                "SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p", [lock_pid, listen_pid]
            )
            await wait_until(lambda: held == [False, True], timeout=15, message="lock retaken")
            await wait_until(
                lambda: (
                    engine._listener is not None
                    and not engine._listener.is_closed()
                    and engine._listener.get_server_pid() != listen_pid
                ),
                timeout=15,
                message="LISTEN replaced",
            )
        events = [e["event"] for e in logs]
        assert any("LISTEN connection did not answer" in e for e in events)
        assert any("instance lock connection did not answer" in e for e in events)
        # Notifications work again: a job enqueued elsewhere wakes the dispatcher at once.
        await admin.execute(
            "INSERT INTO jobs.jobs (name, queue, state, max_attempts) VALUES ('job', 'default', 'ready', 1)"
        )
        await asyncio.wait_for(ran.wait(), timeout=10)

        # Now another daemon takes the lock while ours is silent: claiming stops for good.
        assert db._lock_conn is not None
        lock_pid = db._lock_conn.get_server_pid()
        proxy.blackhole()
        await admin.execute("SELECT pg_terminate_backend($1)", lock_pid)
        other = await asyncpg.connect(db_dsn)
        await wait_until(
            lambda: other.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, INSTANCE_LOCK
            ),
            message="the other daemon holds the lock",
        )
        with pytest.raises(AnotherInstanceRunning):
            await asyncio.wait_for(keeper, timeout=15)
        assert held[-1] is False and engine.claiming_allowed is False
        await other.close()
    finally:
        keeper.cancel()
        await admin.close()
        await engine.stop(grace=1.0)
        await db.close()


async def test_a_claim_whose_answer_is_lost_is_settled_and_its_job_runs_once(
    db_dsn: str, db_pool: asyncpg.Pool, proxy: HalfOpenProxy
) -> None:
    target = urlsplit(db_dsn)
    through_proxy = db_dsn.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}", 1)
    # The engine's pool (one connection, so the claim's statements are prepared on it) goes
    # through the proxy with a short statement deadline; everything else connects directly.
    engine_pool = await asyncpg.create_pool(
        through_proxy,
        min_size=1,
        max_size=1,
        command_timeout=1.0,
        init=_init_connection,
        **POOL_OPTIONS,
    )
    runs: list[int] = []

    async def job(ctx: JobContext, args: NoArgs) -> None:
        runs.append(ctx.job_id)

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(db_dsn)
        await _init_connection(conn)
        return conn

    registry = Registry()
    registry.register(JobSpec("job", "default", NoArgs, job))
    engine = Engine(
        db_pool,
        registry,
        EngineConfig(concurrency={"default": 2}, fallback_poll_s=600.0),
        connect=connect,
        engine_pool=engine_pool,
    )
    await engine.start()
    try:
        first = (await engine.enqueue("job")).id
        await wait_until(lambda: _state(db_pool, first, "succeeded"), message="a first run")
        # Quiet: no statement of the engine in flight when the answers start to vanish, so the
        # next one on that connection is the claim of the job below.
        engine.claiming_allowed = False
        for _ in range(3):  # behind whatever claim or due-time query was already queued
            await engine_pool.fetchval("SELECT 1")
        await wait_until(lambda: engine_pool.get_idle_size() == 1, message="the engine idle")
        with capture_logs() as logs:
            proxy.drop_replies()  # the claim runs and commits; its answer never comes back
            lost = (await engine.enqueue("job")).id
            engine.claiming_allowed = True
            await wait_until(
                lambda: _state(db_pool, lost, "succeeded"), timeout=20, message="settled"
            )
        [settled] = [e for e in logs if "a claim got no answer" in e["event"]]
        # Usually the lost claim is the one that took the job (claimed twice: the lost run, then
        # the real one): it is found running and unknown, and put back. When the lost statement
        # was an earlier, empty claim, there is nothing to put back.
        claims = await db_pool.fetchval("SELECT claims FROM jobs.jobs WHERE id = $1", lost)
        assert (claims, settled["requeued"]) in ((2, [lost]), (1, []))
        assert runs == [first, lost]  # and the job ran once
    finally:
        await engine.stop(grace=1.0)
        await engine_pool.close()


async def _state(pool: asyncpg.Pool, job_id: int, state: str) -> bool:
    return bool(
        await pool.fetchval("SELECT state = $2 FROM jobs.jobs WHERE id = $1", job_id, state)
    )
