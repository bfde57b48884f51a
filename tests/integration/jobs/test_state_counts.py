"""Issue 17: the per-queue, per-state counters (041_state_counts.sql) match a real GROUP BY through
every path that writes jobs: enqueue (ready, scheduled, continuations), claim, finish (success,
retry, failure, continuation release and deletion), cancel, retry and delete one by one and in
bulk, crash recovery, pruning, and the folds in between."""

from __future__ import annotations

import asyncpg

from addicted_jobs.jobs import JobSpec, NoArgs, Registry, RetryPolicy, store
from addicted_jobs.jobs.store import JobFilter
from tests.support import wait_until
from tests.support.engine import EngineFactory, Recorder, in_state


async def assert_exact(pool: asyncpg.Pool) -> None:
    real: dict[str, dict[str, int]] = {}
    for row in await pool.fetch(
        "SELECT queue, state, count(*) AS n FROM jobs.jobs GROUP BY queue, state"
    ):
        real.setdefault(row["queue"], dict.fromkeys(store.STATES, 0))[row["state"]] = row["n"]
    assert await store.state_counts(pool) == real
    await store.fold_counts(pool)
    assert await store.state_counts(pool) == real
    deltas = await pool.fetchval("SELECT count(*) FROM jobs.state_counts")
    assert deltas == sum(1 for by_state in real.values() for n in by_state.values() if n)


def registry(rec: Recorder) -> Registry:
    reg = Registry()
    reg.register(JobSpec("quick", "default", NoArgs, rec.handler("quick")))
    reg.register(JobSpec("other", "other", NoArgs, rec.handler("other")))
    reg.register(
        JobSpec(
            "flaky",
            "default",
            NoArgs,
            rec.handler("flaky"),
            retry=RetryPolicy(retries=1, delays=(0,)),
        )
    )
    return reg


async def test_counters_stay_exact_through_every_path(
    make_engine: EngineFactory, db_pool: asyncpg.Pool, db_dsn: str
) -> None:
    rec = Recorder()
    rec.fail_times["flaky"] = 4  # two jobs, each fails both runs
    engine = await make_engine(registry(rec), concurrency={"default": 4, "other": 2})
    await assert_exact(db_pool)

    # Enqueue: ready, scheduled, continuations of a running chain and of a cancelled parent.
    quick = [await engine.enqueue("quick") for _ in range(20)]
    others = [await engine.enqueue("other") for _ in range(5)]
    flaky = [await engine.enqueue("flaky") for _ in range(2)]
    later = [await engine.enqueue("quick", delay=3600) for _ in range(4)]
    child = await engine.enqueue("quick", after=quick[0].id)
    doomed = await engine.enqueue("other", delay=3600)
    orphan = await engine.enqueue("other", after=doomed.id)
    grand = await engine.enqueue("other", after=orphan.id)
    for job in [*quick, *others, child]:
        await wait_until(lambda j=job: in_state(db_pool, j.id, "succeeded"), message="ran")
    for job in flaky:
        await wait_until(lambda j=job: in_state(db_pool, j.id, "failed"), message="failed")
    await assert_exact(db_pool)

    # One by one: cancel takes continuations with it, retry, delete.
    assert await store.cancel(db_pool, doomed.id) == "scheduled"
    assert await in_state(db_pool, grand.id, "deleted")
    assert (await store.retry(db_pool, doomed.id)) is not None  # brings the chain back
    assert await store.delete_job(db_pool, quick[1].id) == "succeeded"
    # The retried chain runs meanwhile: compare once it has settled, or the two reads below
    # would see different moments of a running engine.
    await wait_until(lambda: in_state(db_pool, grand.id, "succeeded"), message="the chain ran")
    await assert_exact(db_pool)

    # In bulk: retry the failures (they fail no more), cancel the delayed, discard some.
    rec.fail_times["flaky"] = 0
    assert len(await store.bulk_action(db_pool, "retry", JobFilter(states=["failed"]), 10)) == 2
    for job in flaky:
        await wait_until(lambda j=job: in_state(db_pool, j.id, "succeeded"), message="retried")
    cancelled = await store.bulk_action(db_pool, "cancel", JobFilter(name="quick"), 100)
    assert sorted(cancelled) == sorted(j.id for j in later)
    deleted = await store.bulk_action(db_pool, "delete", JobFilter(queue="other"), 3)
    assert len(deleted) == 3
    await assert_exact(db_pool)

    # A crash: another daemon claims jobs and dies; recovery puts them back, one as poison.
    await engine.stop(grace=1.0)
    stuck = [await engine.enqueue("quick") for _ in range(3)]
    dead = await asyncpg.connect(db_dsn)
    try:
        claimed = await store.claim(dead, "default", 10)
    finally:
        await dead.close()
    assert {c.id for c in claimed} >= {j.id for j in stuck}
    await db_pool.execute("UPDATE jobs.jobs SET interruptions = 9 WHERE id = $1", stuck[0].id)
    await assert_exact(db_pool)
    recovered = await store.recover(db_pool, 5)
    assert recovered.poisoned == [stuck[0].id]
    await assert_exact(db_pool)

    # Pruning the old finished jobs.
    await db_pool.execute(
        "UPDATE jobs.jobs SET finished_at = now() - interval '8 days' WHERE finished_at IS NOT NULL"
    )
    assert await store.prune(db_pool, 7.0, batch=4) > 0
    await assert_exact(db_pool)


async def test_stats_queues_and_the_status_line_read_the_counters(
    make_engine: EngineFactory, db_pool: asyncpg.Pool
) -> None:
    """queue_counts (queues, stats, ping, metrics) and ready_count (STATUS=) give the counters'
    numbers, the oldest due job's age only when asked (ping does not show it), and pauses."""
    engine = await make_engine(registry(Recorder()), start=False)
    await engine.set_paused("default", True)
    for _ in range(3):
        await engine.enqueue("quick")
    await engine.enqueue("quick", delay=3600)
    assert await store.ready_count(db_pool) == 3
    counts = await store.queue_counts(db_pool)
    assert counts["default"]["counts"]["ready"] == 3
    assert counts["default"]["counts"]["scheduled"] == 1
    assert counts["default"]["paused"] is True
    assert counts["default"]["oldest_ready_age_s"] is not None
    assert (await store.queue_counts(db_pool, oldest=False))["default"][
        "oldest_ready_age_s"
    ] is None


async def test_the_oldest_age_is_never_lost_to_a_clock_that_stepped_back(
    make_engine: EngineFactory, db_pool: asyncpg.Pool
) -> None:
    """A ready job whose run_at lies after now() (the wall clock stepped back since its insert)
    is still shown as waiting, with age 0; a queue holding only a future scheduled job shows none."""
    engine = await make_engine(registry(Recorder()), start=False)
    await engine.set_paused("default", True)
    ready = (await engine.enqueue("quick")).id
    await db_pool.execute(
        "UPDATE jobs.jobs SET run_at = now() + interval '2 s' WHERE id = $1", ready
    )
    counts = await store.queue_counts(db_pool)
    assert counts["default"]["counts"]["ready"] == 1
    assert counts["default"]["oldest_ready_age_s"] == 0.0
    await db_pool.execute("DELETE FROM jobs.jobs WHERE id = $1", ready)
    await engine.enqueue("quick", delay=3600)
    later = await store.queue_counts(db_pool)
    assert later["default"]["counts"]["scheduled"] == 1
    assert later["default"]["oldest_ready_age_s"] is None
