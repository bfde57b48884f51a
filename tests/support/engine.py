"""What the engine tests share: the `make_engine` fixture's type, job handlers that record what
ran, and a job's state read straight from the table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import BaseModel

from addicted_jobs.db import Database
from addicted_jobs.jobs import Registry, store
from addicted_jobs.jobs.context import JobContext
from addicted_jobs.jobs.engine import Engine, EngineConfig

EngineFactory = Callable[..., Awaitable[Engine]]
"""The `make_engine` fixture (tests/integration/conftest.py): `await make_engine(registry,
start=True, **EngineConfig fields)` returns an Engine on the per-test database, recovered and
started unless `start=False`, and stopped when the test ends."""


def engine_on(db: Database, registry: Registry, config: EngineConfig) -> Engine:
    """An Engine wired to a started Database as the daemon wires it (app.py): its pool for
    requests and jobs, the engine and claim pools, and its connect() for LISTEN. Not started."""
    assert db.pool is not None
    return Engine(
        db.pool,
        registry,
        config,
        connect=db.connect,
        engine_pool=db.engine_pool,
        claim_pool=db.claim_pool,
    )


class Recorder:
    """Handlers that record what ran, in order, and can be made to block or fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.release = asyncio.Event()
        self.fail_times: dict[str, int] = {}

    def handler(self, name: str, *, block: bool = False) -> Callable[[JobContext, BaseModel], Any]:
        """A handler for job type `name`: it records its call, waits for `release` when `block`,
        and raises RuntimeError while `fail_times[name]` is above zero."""

        async def run(ctx: JobContext, args: BaseModel) -> None:
            self.running[name] = self.running.get(name, 0) + 1
            self.peak[name] = max(self.peak.get(name, 0), self.running[name])
            try:
                self.calls.append((name, args))
                if block:
                    await self.release.wait()
                if self.fail_times.get(name, 0) > 0:
                    self.fail_times[name] -= 1
                    raise RuntimeError(f"{name} failing on purpose")
            finally:
                self.running[name] -= 1

        return run


async def job_row(pool: asyncpg.Pool, job_id: int) -> dict[str, Any]:
    """The jobs.jobs row of `job_id` as a dict; AssertionError when there is none."""
    row = await store.get_job(pool, job_id)
    assert row is not None
    return row


async def state_of(pool: asyncpg.Pool, job_id: int) -> str:
    """The job's state column ('ready', 'running', 'succeeded', ...)."""
    return str((await job_row(pool, job_id))["state"])


async def in_state(pool: asyncpg.Pool, job_id: int, state: str) -> bool:
    """Whether the job is in `state` now (a probe for wait_until)."""
    return await state_of(pool, job_id) == state
