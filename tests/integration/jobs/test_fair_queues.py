"""Fair queues: a deep backlog on one queue never delays another queue's jobs. The original once
starved `store-subtitle` while many `fetch-subtitles` waited (spec: its worker count had to be
raised); here each queue has its own dispatcher and slots, so a trickle of jobs on a second queue
starts right away while 100,000 ready jobs of 50 ms each wait on the first one."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from addicted_jobs.jobs import JobContext, JobSpec, NoArgs, Registry, store
from addicted_jobs.jobs.store import NewJob
from tests.support import wait_until
from tests.support.engine import EngineFactory

BACKLOG = 100_000
TRICKLE = 40


class TrickleArgs(BaseModel):
    i: int


class Clock:
    """What ran when: the big queue's finishes, and each trickle job's start (monotonic s)."""

    def __init__(self) -> None:
        self.big_finished: list[float] = []
        self.trickle_started: dict[int, float] = {}

    async def big(self, ctx: JobContext, args: NoArgs) -> None:
        await asyncio.sleep(0.05)
        self.big_finished.append(time.monotonic())

    async def trickle(self, ctx: JobContext, args: TrickleArgs) -> None:
        self.trickle_started[args.i] = time.monotonic()


async def test_a_trickle_starts_at_once_behind_a_backlog_of_a_hundred_thousand_jobs(
    make_engine: EngineFactory,
) -> None:
    clock = Clock()
    registry = Registry()
    registry.register(JobSpec("big", "fetch-subtitles", NoArgs, clock.big))
    registry.register(JobSpec("small", "store-subtitle", TrickleArgs, clock.trickle))
    engine = await make_engine(
        registry, start=False, concurrency={"fetch-subtitles": 10, "store-subtitle": 5}
    )
    async with engine.pool.acquire() as conn:
        await store.enqueue(conn, [NewJob("big", "fetch-subtitles", {}, 1)] * BACKLOG)
        await conn.execute("ANALYZE jobs.jobs")
    await engine.recover()
    await engine.start()
    await wait_until(lambda: len(clock.big_finished) >= 50, message="the backlog draining")

    ready_at: dict[int, float] = {}
    for i in range(TRICKLE):
        ready_at[i] = time.monotonic()  # the job is ready once the enqueue returns, hardly later
        await engine.enqueue("small", {"i": i})
        await wait_until(lambda i=i: i in clock.trickle_started, message=f"trickle job {i}")
        await asyncio.sleep(0.02)  # the cadence of the trickle, not a synchronisation

    # Measured in the big queue's own currency: how many of its jobs finished while a trickle
    # job waited. Ten slots of 50 ms finish ~one job per 5 ms, so a 20 ms start is ~4 of them;
    # a trickle queued behind the backlog would wait for all 100,000 (~500 s).
    waited = [
        sum(ready_at[i] <= t <= clock.trickle_started[i] for t in clock.big_finished)
        for i in range(TRICKLE)
    ]
    assert max(waited) <= 20, waited
    remaining = await engine.pool.fetchval(
        "SELECT count(*) FROM jobs.jobs WHERE name = 'big' AND state = 'ready'"
    )
    assert remaining > BACKLOG * 0.9  # the trickle ran with the backlog still there
