"""Job types for acceptance tests, loaded by the daemon through `[engine] job_modules`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from daemon.jobs.context import JobContext
from daemon.jobs.spec import JobSpec, Registry


class RecordArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


async def record(ctx: JobContext, args: RecordArgs) -> None:
    """Leave a trace of each run in a side table, to count runs from outside the daemon."""
    await ctx.engine.pool.execute(
        "INSERT INTO side_effects (job_id, n) VALUES ($1, $2)", ctx.job_id, args.n
    )


def register(registry: Registry) -> None:
    registry.register(JobSpec("record", "default", RecordArgs, record))
