"""Job types for acceptance tests, loaded by the daemon through `[engine] job_modules`."""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import BaseModel, ConfigDict

from addicted_jobs.jobs import JobContext, JobSpec, NoArgs, Registry, RetryPolicy
from addicted_jobs.jobs.engine import Engine

# Their own queues: a poison job must not be able to hide behind the default queue's traffic.
POISON_QUEUE = "poison"
HOG_QUEUE = "hog"


class RecordArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


class PoisonError(RuntimeError):
    pass


async def record(ctx: JobContext, args: RecordArgs) -> None:
    """Leave a trace of each run in a side table, to count runs from outside the daemon."""
    engine = ctx.enqueuer
    assert isinstance(engine, Engine)  # a test rig may look inside the engine (the domain may not)
    await engine.pool.execute(
        "INSERT INTO side_effects (job_id, n) VALUES ($1, $2)", ctx.job_id, args.n
    )


async def crash(ctx: JobContext, args: NoArgs) -> None:
    """A poison job: its handler fails on every run."""
    raise PoisonError(f"poison job {ctx.job_id} crashed on attempt {ctx.attempt}")


async def hog(ctx: JobContext, args: NoArgs) -> None:
    """Blocking code in a coroutine: holds the whole event loop until something cuts it."""
    # Deliberately blocking: the engine's loop guard must interrupt it.
    time.sleep(60)  # noqa: ASYNC251


class NapArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    s: float


async def nap(ctx: JobContext, args: NapArgs) -> None:
    """Sleep `s` seconds; fails at the end in a daemon started with AJ_TEST_NAP_FAILS set, so
    which daemon's outcome landed shows in the row."""
    await asyncio.sleep(args.s)
    if os.environ.get("AJ_TEST_NAP_FAILS"):
        raise RuntimeError(f"nap {ctx.job_id} ran in the daemon told to fail it")


def register(registry: Registry) -> None:
    registry.register(JobSpec("record", "default", RecordArgs, record))
    registry.register(JobSpec("nap", "default", NapArgs, nap, retry=RetryPolicy(retries=0)))
    registry.register(
        JobSpec("crash", POISON_QUEUE, NoArgs, crash, retry=RetryPolicy(retries=2, delays=(0.1,)))
    )
    registry.register(
        JobSpec("hog", HOG_QUEUE, NoArgs, hog, retry=RetryPolicy(retries=0), timeout=1.0)
    )
