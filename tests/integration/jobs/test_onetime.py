"""The one-time migration framework on a real database: keys, order, recording, failure and retry at
the next start, required failures, systemd keep-alive, the state listing, and that no job is
claimed before the migrations are done. Crashes and stops: test_onetime_crash.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from addicted_jobs.db import LOCK_NAMESPACE
from addicted_jobs.jobs import (
    JobContext,
    JobSpec,
    MigrationContext,
    NoArgs,
    OneTimeMigration,
    Registry,
)
from addicted_jobs.jobs.onetime import (
    ONETIME_LOCK,
    MigrationRegistry,
    MigrationsBusy,
    RequiredMigrationFailed,
    run_pending,
)
from addicted_jobs.jobs.onetime_state import list_state, onetime_rows
from tests.support import wait_until
from tests.support.engine import EngineFactory
from tests.support.onetime import Later, Patient, Recorder, history


class PopulateTvDbIdsMigration(Recorder):
    date = (2023, 2, 29)


class Zeta(Recorder):
    date = (2023, 9, 16)


class Alpha(Recorder):
    date = (2023, 9, 16)


class Flaky(Recorder):
    date = (2024, 8, 14)


class MustWork(Recorder):
    date = (2024, 8, 14)
    required = True


class FakeNotifier:
    def __init__(self) -> None:
        self.extends: list[float] = []
        self.statuses: list[str] = []

    def extend_timeout(self, seconds: float) -> bool:
        self.extends.append(seconds)
        return True

    def status(self, text: str) -> bool:
        self.statuses.append(text)
        return True


def test_keys_keep_the_dates_unpadded_and_unvalidated() -> None:
    assert PopulateTvDbIdsMigration([]).key == "2023-2-29_PopulateTvDbIdsMigration"
    assert Later([]).key == "2025-1-29_Later"
    with pytest.raises(ValueError, match="registered twice"):
        MigrationRegistry([Alpha([]), Alpha([])])

    class NoDate(OneTimeMigration):
        pass

    class BadMonth(OneTimeMigration):
        date = (2024, 13, 1)

    for bad in (NoDate(), BadMonth()):
        with pytest.raises(ValueError, match="date must be"):
            MigrationRegistry([bad])


async def test_runs_in_date_then_name_order_once_and_records_each(db_pool: asyncpg.Pool) -> None:
    ran: list[str] = []
    migrations = [Later(ran), Zeta(ran), PopulateTvDbIdsMigration(ran), Alpha(ran)]
    report = await run_pending(db_pool, migrations)
    expected = [
        "2023-2-29_PopulateTvDbIdsMigration",
        "2023-9-16_Alpha",
        "2023-9-16_Zeta",
        "2025-1-29_Later",
    ]
    assert ran == expected
    assert [o.key for o in report.ran] == expected and not report.failed
    rows = await db_pool.fetch("SELECT * FROM onetime_migrations ORDER BY id")
    assert [r["migration_type"] for r in rows] == expected
    for row in rows:
        assert row["state"] == 0 and row["error"] is None
        assert row["duration_ms"] >= 0 and row["finished_at"] >= row["started_at"]

    again = await run_pending(db_pool, migrations)
    assert ran == expected, "a migration with a success record never runs again"
    assert again.ran == [] and again.already_done == expected


async def test_failure_is_recorded_others_continue_and_it_succeeds_at_next_start(
    db_pool: asyncpg.Pool,
) -> None:
    ran: list[str] = []
    Flaky.failures = 1
    first = await run_pending(db_pool, [Flaky(ran), Later(ran)])
    assert [o.key for o in first.failed] == ["2024-8-14_Flaky"]
    assert ran == ["2024-8-14_Flaky", "2025-1-29_Later"], "start-up goes on past a failure"
    [failed] = await history(db_pool, "2024-8-14_Flaky")
    assert failed["state"] == 2 and failed["finished_at"] is not None
    assert failed["error"].startswith("RuntimeError: upstream said no")
    assert "Traceback" in failed["error"]

    second = await run_pending(db_pool, [Flaky(ran), Later(ran)])
    assert [o.key for o in second.ran] == ["2024-8-14_Flaky"] and not second.failed
    assert [r["state"] for r in await history(db_pool, "2024-8-14_Flaky")] == [2, 0]
    [status] = [s for s in await list_state(db_pool, [Flaky(ran)]) if s.key.endswith("Flaky")]
    assert status.state == "success" and status.attempts == 2


async def test_a_required_failure_stops_start_up_with_a_clear_error(db_pool: asyncpg.Pool) -> None:
    ran: list[str] = []
    MustWork.failures = 1
    with pytest.raises(RequiredMigrationFailed) as caught:
        await run_pending(db_pool, [Later(ran), MustWork(ran)])
    message = str(caught.value)
    assert "2024-8-14_MustWork" in message and "upstream said no" in message
    assert "start-up stopped" in message
    assert ran == ["2024-8-14_MustWork"], "nothing after the required failure runs"
    [row] = await history(db_pool, "2024-8-14_MustWork")
    assert row["state"] == 2

    report = await run_pending(db_pool, [Later(ran), MustWork(ran)])
    assert [o.key for o in report.ran] == ["2024-8-14_MustWork", "2025-1-29_Later"]
    assert not report.failed


async def test_long_migrations_keep_extending_the_systemd_start_timeout(
    db_pool: asyncpg.Pool,
) -> None:
    notifier, release = FakeNotifier(), asyncio.Event()
    run = asyncio.create_task(
        run_pending(db_pool, [Patient(release)], notifier=notifier, keepalive_s=0.02)
    )
    # start + progress + at least three keep-alives while it sits in one long step
    await wait_until(lambda: len(notifier.extends) >= 5, message="keep-alive notifications")
    release.set()
    report = await run
    assert not report.failed and all(s > 0 for s in notifier.extends)
    assert "one-time migration 2024-5-5_Patient: 1/2" in notifier.statuses


async def test_a_second_runner_on_the_same_database_is_refused(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as other:
        await other.execute("SELECT pg_advisory_lock($1, $2)", LOCK_NAMESPACE, ONETIME_LOCK)
        with pytest.raises(MigrationsBusy, match="held the one-time migration lock"):
            await run_pending(db_pool, [Later([])], lock_wait_s=0.3)
        await other.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_NAMESPACE, ONETIME_LOCK)


async def test_no_job_is_claimed_before_the_migrations_finished(
    db_pool: asyncpg.Pool, make_engine: EngineFactory
) -> None:
    events: list[str] = []

    async def record(ctx: JobContext, args: NoArgs) -> None:
        events.append(f"job {ctx.job_id}")

    registry = Registry()
    registry.register(JobSpec(name="record", queue="default", args_model=NoArgs, handler=record))
    engine = await make_engine(registry, start=False)
    await engine.recover()
    before = await engine.enqueue("record")

    class Backfill(OneTimeMigration):
        date = (2024, 2, 2)

        async def execute(self, ctx: MigrationContext) -> None:
            events.append(self.key)
            await ctx.enqueue("record")  # a migration that enqueues: stored, run later

    class Cleanup(OneTimeMigration):
        date = (2024, 3, 3)

        async def execute(self, ctx: MigrationContext) -> None:
            events.append(self.key)

    report = await run_pending(db_pool, [Cleanup(), Backfill()], enqueue=engine.enqueue)
    assert not report.failed
    states = await db_pool.fetch("SELECT id, state FROM jobs.jobs ORDER BY id")
    assert [r["state"] for r in states] == ["ready", "ready"] and states[0]["id"] == before.id

    await engine.start()

    async def all_done() -> bool:
        return bool(await db_pool.fetchval("SELECT bool_and(state = 'succeeded') FROM jobs.jobs"))

    await wait_until(all_done, message="both jobs to succeed")
    assert events[:2] == ["2024-2-2_Backfill", "2024-3-3_Cleanup"]
    assert sorted(events[2:]) == sorted(f"job {r['id']}" for r in states)
    first_claim = await db_pool.fetchval("SELECT min(started_at) FROM jobs.jobs")
    last_finish = await db_pool.fetchval("SELECT max(finished_at) FROM onetime_migrations")
    assert first_claim > last_finish


async def test_enqueue_without_an_engine_fails_the_migration_clearly(
    db_pool: asyncpg.Pool,
) -> None:
    class Enqueuer(OneTimeMigration):
        date = (2024, 4, 4)

        async def execute(self, ctx: MigrationContext) -> None:
            await ctx.enqueue("noop")

    report = await run_pending(db_pool, [Enqueuer()])
    [failed] = report.failed
    assert failed.error is not None and "no job engine to enqueue 'noop'" in failed.error


async def test_the_state_lists_registered_and_recorded_migrations(db_pool: asyncpg.Pool) -> None:
    ran: list[str] = []
    Flaky.failures = 1
    await run_pending(db_pool, [Flaky(ran), Later(ran)])
    await db_pool.execute(
        "INSERT INTO onetime_migrations (migration_type, state, finished_at)"
        " VALUES ('2020-1-1_Gone', 0, now())"
    )
    rows = await onetime_rows(db_pool, [Later(ran), Flaky(ran), Alpha(ran)])
    by_key = {m["key"]: m for m in rows}
    assert list(by_key) == [
        "2023-9-16_Alpha",
        "2024-8-14_Flaky",
        "2025-1-29_Later",
        "2020-1-1_Gone",
    ]
    assert by_key["2023-9-16_Alpha"]["state"] == "pending"
    assert by_key["2024-8-14_Flaky"]["state"] == "fail"
    assert by_key["2024-8-14_Flaky"]["error"] == "RuntimeError: upstream said no"
    assert by_key["2024-8-14_Flaky"]["attempts"] == 1
    assert by_key["2025-1-29_Later"]["state"] == "success"
    assert by_key["2025-1-29_Later"]["duration_ms"] >= 0
    assert by_key["2025-1-29_Later"]["finished_at"].startswith("20")
    assert by_key["2020-1-1_Gone"]["registered"] is False
    json.dumps(rows)  # what the socket sends
