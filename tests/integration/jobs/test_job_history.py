"""Issue 17: every run of a job is recorded (outcome, error with traceback, duration, pid and host,
refunds), shown in order with a state timeline, kept across retry, and pruned with the job."""

from __future__ import annotations

import os
import socket

import asyncpg

from addicted_jobs.control.history import timeline
from addicted_jobs.jobs import JobSpec, NoArgs, Registry, RetryPolicy, store
from addicted_jobs.jobs.spec import default_registry
from addicted_jobs.jobs.store import JobFilter
from tests.support import wait_until
from tests.support.engine import EngineFactory, Recorder, in_state

ME = (os.getpid(), socket.gethostname())


def flaky_registry(rec: Recorder, retries: int = 1) -> Registry:
    registry = Registry()
    registry.register(
        JobSpec(
            "flaky",
            "default",
            NoArgs,
            rec.handler("flaky"),
            retry=RetryPolicy(retries=retries, delays=(0,)),
        )
    )
    return registry


async def test_each_run_is_recorded_with_outcome_traceback_runner_and_a_timeline(
    make_engine: EngineFactory,
) -> None:
    rec = Recorder()
    rec.fail_times["flaky"] = 1
    engine = await make_engine(flaky_registry(rec))
    job = await engine.enqueue("flaky")
    await wait_until(lambda: in_state(engine.pool, job.id, "succeeded"), message="second run")

    runs = await store.job_attempts(engine.pool, job.id)
    assert [(r["attempt"], r["counted"], r["outcome"], r["state_after"]) for r in runs] == [
        (1, 1, "retry", "ready"),
        (2, 2, "succeeded", "succeeded"),
    ]
    first, second = runs
    assert "RuntimeError: flaky failing on purpose" in first["error"]
    assert "Traceback (most recent call last)" in first["error"]
    assert second["error"] is None
    assert all((r["pid"], r["host"]) == ME and not r["refunded"] for r in runs)
    assert all(r["duration_s"] is not None and r["duration_s"] >= 0 for r in runs)
    assert first["finished_at"] <= second["started_at"] <= second["finished_at"]

    row = await store.get_job(engine.pool, job.id)
    assert row is not None
    states = [p["state"] for p in timeline(row, runs)]
    assert states == ["ready", "running", "ready", "running", "succeeded"]


async def test_retry_keeps_the_history_and_restarts_the_attempt_counter(
    make_engine: EngineFactory,
) -> None:
    rec = Recorder()
    rec.fail_times["flaky"] = 1
    engine = await make_engine(flaky_registry(rec, retries=0))
    job = await engine.enqueue("flaky")
    await wait_until(lambda: in_state(engine.pool, job.id, "failed"), message="failed for good")

    retried = await store.retry(engine.pool, job.id)
    assert retried is not None and retried.changed
    await wait_until(lambda: in_state(engine.pool, job.id, "succeeded"), message="ran again")
    runs = await store.job_attempts(engine.pool, job.id)
    assert [(r["attempt"], r["counted"], r["outcome"]) for r in runs] == [
        (1, 1, "failed"),
        (2, 1, "succeeded"),  # the counter started again; the run number went on
    ]
    row = await store.get_job(engine.pool, job.id)
    assert row is not None and row["retried_at"] is not None
    notes = [p["note"] for p in timeline(row, runs)]
    assert "retried by an operator" in notes


async def test_bulk_retry_keeps_history_too(make_engine: EngineFactory) -> None:
    rec = Recorder()
    rec.fail_times["flaky"] = 2
    engine = await make_engine(flaky_registry(rec, retries=0))
    jobs = [await engine.enqueue("flaky") for _ in range(2)]
    for job in jobs:
        await wait_until(lambda j=job: in_state(engine.pool, j.id, "failed"), message="failed")
    ids = await store.bulk_action(engine.pool, "retry", JobFilter(name="flaky"), 10)
    assert sorted(ids) == sorted(j.id for j in jobs)
    for job in jobs:
        await wait_until(
            lambda j=job: in_state(engine.pool, j.id, "succeeded"), message="ran again"
        )
        outcomes = [r["outcome"] for r in await store.job_attempts(engine.pool, job.id)]
        assert outcomes == ["failed", "succeeded"]


async def test_a_crashed_run_is_recorded_as_refunded_with_the_daemon_that_claimed_it(
    make_engine: EngineFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    engine = await make_engine(default_registry(), start=False, max_interruptions=5)
    job = await engine.enqueue("noop")
    # Another daemon (pid 4242 on host-b) claims it and dies without an outcome.
    other = await asyncpg.connect(db_dsn, server_settings={"daemon.runner": "4242@host-b"})
    try:
        assert [c.id for c in await store.claim(other, "default", 1)] == [job.id]
    finally:
        await other.close()
    recovered = await store.recover(db_pool, 5)
    assert recovered.requeued == [job.id]
    [run] = await store.job_attempts(db_pool, job.id)
    assert (run["outcome"], run["state_after"], run["refunded"]) == ("crashed", "ready", True)
    assert (run["pid"], run["host"], run["attempt"], run["duration_s"]) == (4242, "host-b", 1, None)


async def test_a_shutdown_refund_is_recorded(make_engine: EngineFactory) -> None:
    rec = Recorder()
    registry = Registry()
    registry.register(JobSpec("slow", "default", NoArgs, rec.handler("slow", block=True)))
    engine = await make_engine(registry)
    job = await engine.enqueue("slow")
    await wait_until(lambda: in_state(engine.pool, job.id, "running"), message="running")
    await wait_until(lambda: bool(rec.calls), message="handler entered")
    await engine.stop(grace=0.1)
    [run] = await store.job_attempts(engine.pool, job.id)
    assert (run["outcome"], run["state_after"], run["refunded"]) == ("interrupted", "ready", True)
    assert (await store.get_job(engine.pool, job.id) or {})["attempt"] == 0


async def test_runs_go_with_their_job_when_it_is_deleted_or_pruned(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(default_registry())
    jobs = [await engine.enqueue("noop") for _ in range(3)]
    for job in jobs:
        await wait_until(lambda j=job: in_state(engine.pool, j.id, "succeeded"), message="done")
    count = "SELECT count(*) FROM jobs.attempts WHERE job_id = ANY ($1::bigint[])"
    ids = [j.id for j in jobs]
    assert await engine.pool.fetchval(count, ids) == 3
    assert await store.delete_job(engine.pool, ids[0]) == "succeeded"
    assert await engine.pool.fetchval(count, ids) == 2
    await engine.pool.execute(
        "UPDATE jobs.jobs SET finished_at = now() - interval '8 days' WHERE id = ANY ($1)", ids
    )
    assert await store.prune(engine.pool, 7.0) == 2
    assert await engine.pool.fetchval(count, ids) == 0
