"""Job types of the cluster acceptance test, loaded by each daemon through `[engine] job_modules`.

Every run that completes its handler leaves a row in `cluster_runs` (job, kind, the node and pid
that ran it, when its handler started and ended), so the test can count runs, check that no two
runs held one keyed lock at once, and tell which node ran what.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from addicted_jobs.jobs import JobContext, JobSpec, Registry
from addicted_jobs.jobs.engine import Engine

CAP = 4
LOCK_KEYS = 4
TIMEOUT_S = 6.0
"""The cluster's node timeout in the acceptance tests, seconds."""

CREATE_TABLE = """
CREATE TABLE cluster_runs (job_id bigint NOT NULL, kind text NOT NULL, lock_key int,
                           node bigint, pid int NOT NULL, t0 timestamptz NOT NULL,
                           t1 timestamptz NOT NULL)
"""


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


def _engine(ctx: JobContext) -> Engine:
    """The daemon's engine behind the context: a test rig may look inside (the domain may not)."""
    assert isinstance(ctx.enqueuer, Engine)
    return ctx.enqueuer


async def _run(ctx: JobContext, kind: str, key: int | None, seconds: float) -> None:
    cluster = _engine(ctx).cluster
    node = cluster.node_id if cluster is not None else None
    t0 = datetime.now(UTC)
    await asyncio.sleep(seconds)
    await _engine(ctx).pool.execute(
        "INSERT INTO cluster_runs VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())",
        ctx.job_id,
        kind,
        key,
        node,
        os.getpid(),
        t0,
    )


async def work(ctx: JobContext, args: Args) -> None:
    await _run(ctx, "work", None, 0.01)


async def capped(ctx: JobContext, args: Args) -> None:
    await _run(ctx, "capped", None, 0.04)


async def locked(ctx: JobContext, args: Args) -> None:
    await _run(ctx, "locked", args.n % LOCK_KEYS, 0.02)


def register(registry: Registry) -> None:
    registry.register(JobSpec("cwork", "cl-work", Args, work, unique_key=lambda a: str(a.n)))
    registry.register(
        JobSpec("ccapped", "cl-capped", Args, capped, unique_key=lambda a: str(a.n), cap=CAP)
    )
    registry.register(
        JobSpec(
            "clocked",
            "cl-locked",
            Args,
            locked,
            unique_key=lambda a: str(a.n),
            lock_key=lambda a: str(a.n % LOCK_KEYS),
            lock_mode="wait",
        )
    )


def daemon_config(dsn: str) -> dict[str, Any]:
    """The config of a cluster node that runs these job types on `dsn` (node timeout TIMEOUT_S,
    heartbeat 1 s) with every recurring entry off, so the tests count only their own jobs."""
    return {
        "database": {"dsn": dsn},
        "engine": {"job_modules": ["tests.support.cluster_jobs"]},
        "cluster": {"enabled": True, "node_timeout_s": TIMEOUT_S, "heartbeat_s": 1.0},
        "recurring": {
            name: {"enabled": False}
            for name in (
                "refresh_available_shows",
                "redeem_download_credentials",
                "check_completed_tmdb_not_completed",
                "check_completed_tmdb_completed",
            )
        },
    }
