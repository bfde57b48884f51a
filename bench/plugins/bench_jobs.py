"""Bench job types, loaded by the daemon through `[engine] job_modules`: `bench_stamp` records the
monotonic time its handler starts and writes the records to $BENCH_LAT_OUT when the daemon exits;
`bench_trickle` does the same on the store-subtitle queue, and `bench_sleep` sleeps `ms` on the
fetch-subtitles queue (bench/fairness.py: a backlog on one queue, a trickle on another).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import time

from pydantic import BaseModel

from addicted_jobs.jobs import JobContext, JobSpec, Registry

_records: list[tuple[float, int]] = []


class StampArgs(BaseModel):
    i: int


class SleepArgs(BaseModel):
    ms: float


async def sleep(ctx: JobContext, args: SleepArgs) -> None:
    await asyncio.sleep(args.ms / 1000)


async def stamp(ctx: JobContext, args: StampArgs) -> None:
    _records.append((time.monotonic(), args.i))


def _write() -> None:
    out = os.environ.get("BENCH_LAT_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(_records, f)


def register(registry: Registry) -> None:
    atexit.register(_write)
    registry.register(JobSpec("bench_stamp", "default", StampArgs, stamp))
    registry.register(JobSpec("bench_trickle", "store-subtitle", StampArgs, stamp))
    registry.register(JobSpec("bench_sleep", "fetch-subtitles", SleepArgs, sleep))
