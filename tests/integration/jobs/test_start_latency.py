"""A job enqueued by another process on an idle daemon starts within milliseconds (issue 20): the
enqueue's notification wakes its queue's dispatcher at once, whose claim runs on the daemon's
claim pool. A wake-up that waited for a timer, or a lost one left to the fallback poll (a
minute here), would miss the deadline by far."""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
from pydantic import BaseModel

from addicted_jobs.db import Database
from addicted_jobs.jobs import JobContext, JobSpec, Registry, store
from addicted_jobs.jobs.engine import EngineConfig
from addicted_jobs.jobs.store import NewJob
from tests.support import wait_until
from tests.support.engine import engine_on

LONE_JOBS = 20
# Generous for a loaded 2-core CI box: the bench's lone jobs start ~2 ms after the enqueue.
EACH_S = 1.0
MEDIAN_S = 0.1


class Stamp(BaseModel):
    i: int


async def test_a_lone_job_starts_promptly_after_another_process_enqueues_it(
    daemon_db: Database, db_pool: asyncpg.Pool
) -> None:
    started: dict[int, float] = {}
    arrived = asyncio.Event()

    async def stamp(ctx: JobContext, args: Stamp) -> None:
        started[args.i] = time.monotonic()
        arrived.set()

    registry = Registry()
    registry.register(JobSpec("stamp", "default", Stamp, stamp))
    # The fallback poll cannot start anything within the test's deadlines.
    config = EngineConfig(concurrency={"default": 10}, fallback_poll_s=60.0)
    engine = engine_on(daemon_db, registry, config)
    await engine.recover()
    await engine.start()
    try:
        lags: list[float] = []
        for i in range(LONE_JOBS):
            arrived.clear()
            # Enqueued through another pool, as a client process would: only the notification
            # can tell the engine (Engine.enqueue would wake the dispatcher in-process).
            await store.enqueue(db_pool, [NewJob("stamp", "default", {"i": i}, 1)])
            enqueued = time.monotonic()
            await asyncio.wait_for(arrived.wait(), timeout=EACH_S * 5)
            lags.append(started[i] - enqueued)
            # The next one arrives on an idle daemon: this one's end written, nothing claimed.
            await _wait_idle(db_pool)
    finally:
        await engine.stop(grace=5.0)
    assert max(lags) < EACH_S, f"a lone job started {max(lags):.3f} s after its enqueue"
    assert statistics.median(lags) < MEDIAN_S, f"lone jobs' median start lag {lags}"


async def _wait_idle(pool: asyncpg.Pool) -> None:
    await wait_until(
        lambda: pool.fetchval(
            "SELECT count(*) = 0 FROM jobs.jobs WHERE state NOT IN ('succeeded', 'failed')"
        ),
        message="the job's end written",
    )
