"""The engine under faults other PostgreSQL queues have met (issue 14): a row another session
holds locked, a late finish from a run that was recovered and claimed again elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from structlog.testing import capture_logs

from addicted_jobs.cli.top import render
from addicted_jobs.control.ops import EngineOps
from addicted_jobs.control.server import Peer
from addicted_jobs.jobs import JobContext, JobRequest, JobSpec, NoArgs, Registry, store
from addicted_jobs.jobs.store import NewJob, Outcome
from tests.support import wait_until
from tests.support.engine import EngineFactory


async def count_in(pool: asyncpg.Pool, state: str, name: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM jobs.jobs WHERE state = $1 AND name = $2", state, name
        )
    )


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_a_locked_job_row_holds_only_its_own_status_write(
    make_engine: EngineFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    release = asyncio.Event()

    async def held(ctx: JobContext, args: NoArgs) -> None:
        await release.wait()

    async def quick(ctx: JobContext, args: NoArgs) -> None:
        return None

    registry = Registry()
    registry.register(JobSpec("held", "default", NoArgs, held))
    registry.register(JobSpec("quick", "default", NoArgs, quick))
    engine = await make_engine(registry)
    held_id = (await engine.enqueue("held")).id
    await wait_until(lambda: count_in(db_pool, "running", "held"), message="held running")

    operator = await asyncpg.connect(db_dsn)
    try:
        tx = operator.transaction()
        await tx.start()
        await operator.execute("SELECT 1 FROM jobs.jobs WHERE id = $1 FOR UPDATE", held_id)
        release.set()  # its outcome now waits on the operator's lock
        await wait_until(lambda: engine.flusher.held, message="the held outcome set aside")
        await engine.enqueue_many([JobRequest("quick", {}) for _ in range(300)])
        # All 300 written while the operator still holds the one row.
        await wait_until(
            lambda: _equals(count_in(db_pool, "succeeded", "quick"), 300),
            message="300 quick jobs written",
        )
        assert await count_in(db_pool, "running", "held") == 1  # written once the lock ends
        await tx.commit()
    finally:
        await operator.close()
    await wait_until(
        lambda: count_in(db_pool, "succeeded", "held"), message="held outcome written after"
    )
    assert not engine.flusher.held


async def test_a_late_finish_never_overwrites_a_run_recovered_and_claimed_again(
    db_pool: asyncpg.Pool,
) -> None:
    [job] = await store.enqueue(db_pool, [NewJob("noop", "default", {}, 3)])
    [first] = await store.claim(db_pool, "default", 1)
    # Another daemon takes over: start-up recovery, then its own claim of the same job.
    await store.recover(db_pool, 5)
    [second] = await store.claim(db_pool, "default", 1)
    assert second.id == first.id == job.id and second.claims == first.claims + 1
    # The first daemon's late outcome is dropped; the second run's own is written.
    await store.finish(db_pool, [Outcome(job.id, first.claims, "failed", error="late")])
    row = await store.get_job(db_pool, job.id)
    assert row is not None and row["state"] == "running" and row["last_error"] is None
    await store.finish(db_pool, [Outcome(job.id, second.claims, "succeeded")])
    row = await store.get_job(db_pool, job.id)
    assert row is not None and row["state"] == "succeeded"


async def test_a_retried_continuation_waits_for_its_running_parent(
    make_engine: EngineFactory, db_pool: asyncpg.Pool
) -> None:
    release = asyncio.Event()
    order: list[str] = []

    async def parent(ctx: JobContext, args: NoArgs) -> None:
        await release.wait()
        order.append("parent")

    async def child(ctx: JobContext, args: NoArgs) -> None:
        order.append("child")

    registry = Registry()
    registry.register(JobSpec("parent", "default", NoArgs, parent))
    registry.register(JobSpec("child", "default", NoArgs, child))
    engine = await make_engine(registry)
    p = (await engine.enqueue("parent")).id
    c = (await engine.enqueue("child", after=p)).id
    await wait_until(lambda: count_in(db_pool, "running", "parent"), message="parent running")
    assert await store.cancel(db_pool, c) == "awaiting"
    retried = await store.retry(db_pool, c)
    assert retried is not None and (retried.previous, retried.state) == ("deleted", "awaiting")
    # The dispatcher is woken and the queue polled meanwhile: the child must still not start.
    engine.wake("default")
    await wait_until(lambda: _equals(count_in(db_pool, "awaiting", "child"), 1), message="wait")
    assert order == []
    release.set()
    await wait_until(lambda: count_in(db_pool, "succeeded", "child"), message="child ran")
    assert order == ["parent", "child"]


async def test_retrying_a_cancelled_parent_brings_back_its_chain(
    make_engine: EngineFactory, db_pool: asyncpg.Pool
) -> None:
    order: list[str] = []

    def recording(name: str) -> Callable[[JobContext, NoArgs], Awaitable[None]]:
        async def run(ctx: JobContext, args: NoArgs) -> None:
            order.append(name)

        return run

    registry = Registry()
    for name in ("first", "second", "third"):
        registry.register(JobSpec(name, "default", NoArgs, recording(name)))
    engine = await make_engine(registry)
    first = (await engine.enqueue("first", delay=3600)).id
    second = (await engine.enqueue("second", after=first)).id
    third = (await engine.enqueue("third", after=second)).id
    assert await store.cancel(db_pool, first) == "scheduled"
    for job_id in (second, third):
        row = await store.get_job(db_pool, job_id)
        assert row is not None and row["state"] == "deleted"
    retried = await store.retry(db_pool, first)
    assert retried is not None and (retried.state, retried.restored) == ("ready", 2)
    await wait_until(lambda: count_in(db_pool, "succeeded", "third"), message="chain ran")
    assert order == ["first", "second", "third"]


async def test_a_long_open_snapshot_is_logged_once_and_shown_by_ping_and_top(
    make_engine: EngineFactory, db_dsn: str
) -> None:
    engine = await make_engine(Registry(), horizon_warn_s=0.3, horizon_check_s=0.05)
    ops = EngineOps(engine, version="test", uptime=lambda: 1.0)
    peer = Peer(pid=None, uid=None, gid=None)
    assert "oldest_transaction" not in await ops.ping(NoArgs(), peer)
    reporting = await asyncpg.connect(db_dsn, server_settings={"application_name": "reporting"})
    try:
        with capture_logs() as logs:
            async with reporting.transaction(isolation="repeatable_read"):
                await reporting.fetchval("SELECT count(*) FROM jobs.jobs")  # takes the snapshot
                holder = await wait_until(lambda: engine.horizon, message="the holder shown")
                assert holder["pid"] == reporting.get_server_pid()
                assert holder["application_name"] == "reporting" and holder["age_s"] >= 0.3
                await wait_until(  # several more checks while it stays open
                    lambda: engine.horizon and engine.horizon["age_s"] >= holder["age_s"] + 0.2,
                    message="later checks",
                )
                shown = (await ops.ping(NoArgs(), peer))["oldest_transaction"]
                assert shown["pid"] == holder["pid"]
                stats = await ops.stats(NoArgs(), peer)
                assert "holds back vacuum (pid" in render(stats)
        warnings = [e for e in logs if "holds back vacuum" in e["event"]]
        assert len(warnings) == 1 and warnings[0]["holder_pid"] == holder["pid"]
        assert "idle_in_transaction_session_timeout" in warnings[0]["event"]
    finally:
        await reporting.close()
    await wait_until(lambda: engine.horizon is None, message="cleared once it ends")
    assert "oldest_transaction" not in await ops.ping(NoArgs(), peer)
