"""Reliability drills on the daemon as a subprocess: kill -9 mid-sync, a database restart, an S3
outage, an upstream fault storm, poison jobs, SIGTERM during a long job. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from addicted_jobs.sandbox import Sandbox
from tests.plugins.s3 import MotoServer
from tests.support import reliability as env
from tests.support import wait_until

pytestmark = pytest.mark.acceptance
SHOWS, REFRESHED, DOWNLOADS = 40, 10, 24  # 1: kill -9
LOAD = 3000  # 2: database restart
S3_SHOWS, S3_DOWNLOADS, OUTAGE_SECONDS = 10, 16, 30.0  # 3: S3 outage
STORM_SHOWS, STORM_REFRESHED, STORM_SECONDS = 30, 8, 6.0  # 4: fault storm
QUOTA = 100_000  # downloads per cookie: the sandbox's daily limit is not under test here


async def _job(pool: asyncpg.Pool, job_id: int) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM jobs.jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def _in_state(pool: asyncpg.Pool, job_id: int, *states: str) -> bool:
    return (await _job(pool, job_id))["state"] in states


@pytest.mark.timeout(180)
async def test_kill_9_during_a_sync_with_downloads_in_flight(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with Sandbox(shows=SHOWS // 2, quota_per_cookie=QUOTA) as box:
        box.faults.latency = 0.05  # every request takes a while: work is in flight at the kill
        daemon = env.launch(daemon_factory, "kill9", env.config(db_dsn, box))
        await daemon.start()
        await daemon.add_credential()
        await daemon.cli("enqueue", "refresh_available_shows")
        await env.settled(db_pool, timeout=60, message="the first sync")
        known = sorted(await env.addic7ed_ids(db_pool))
        seeded, refreshed = known[:2], known[2 : 2 + REFRESHED]
        await daemon.enqueue("refresh_single_show", ({"show_id": i} for i in seeded))
        await env.settled(db_pool, timeout=60, message="two shows with subtitles")

        # Addic7ed lists new shows: a sync (TMDB lookups for each) runs with refreshes and downloads.
        env.grow(box, SHOWS)
        [sync] = await daemon.enqueue("refresh_available_shows", [{}])
        await daemon.enqueue("refresh_single_show", ({"show_id": i} for i in refreshed))
        wanted = await env.downloadable(db_pool, box, DOWNLOADS)
        assert len(wanted) == DOWNLOADS
        await daemon.enqueue("download_subtitle", ({"subtitle_id": i} for i in wanted))

        async def mid_sync() -> bool:
            stored = len(await env.stored_paths(db_pool))
            return stored >= 3 and await _in_state(db_pool, sync, "running")

        await wait_until(mid_sync, timeout=30, message="stores done while the sync runs")
        await daemon.kill()
        assert await _in_state(db_pool, sync, "running")
        assert len(await env.stored_paths(db_pool)) < len(wanted), "killed after every store"

        await daemon.start()
        await env.settled(db_pool, timeout=60, message="every job finished after the restart")
        assert await env.bad_jobs(db_pool) == []
        recovered = await daemon.wait_log("recovered jobs left running by a previous daemon")
        assert recovered["requeued"] > 0

        # The whole catalogue is there, once: every show, and every refreshed show in full.
        linked = await env.addic7ed_ids(db_pool)
        assert sorted(linked.values()) == list(box.catalogue.show_ids())
        assert await db_pool.fetchval("SELECT count(*) FROM tv_shows") == SHOWS
        checked = seeded + refreshed
        expected = {i: env.expected_show(box, linked[i]) for i in checked}
        assert await env.show_counts(db_pool, checked) == expected
        # A second full sync and refresh of the same shows finds nothing new to add.
        before = await env.table_sizes(db_pool)
        await env.age_catalogue(db_pool)
        await daemon.cli("enqueue", "refresh_available_shows")
        await daemon.enqueue("refresh_single_show", ({"show_id": i} for i in checked))
        await env.settled(db_pool, timeout=60, message="the second refresh")
        assert await env.bad_jobs(db_pool) == []
        assert await env.table_sizes(db_pool) == before
        assert await env.show_counts(db_pool, checked) == expected

        # Every download was stored, and reads back as Addic7ed serves it.
        assert sorted(await env.stored_paths(db_pool)) == sorted(wanted)
        files = await daemon.read_back(wanted, tmp_path / "read-back")
        box.faults.latency = 0
        assert files == await env.upstream_files(box, db_pool, wanted)
        assert await daemon.stop() == 0


@pytest.mark.timeout(180)
async def test_a_database_restart_under_load_keeps_every_job(daemon_factory: Any) -> None:
    # The daemon's own embedded server: restarting it disturbs no other test.
    conf = env.config("", queues={"default": {"concurrency": 4}})
    daemon = env.launch(daemon_factory, "pg-restart", conf)
    await daemon.start(timeout=120)
    try:
        await daemon.cli("enqueue", "noop", "sleep_ms=5", "--count", str(LOAD))
        socket_dir = env.embedded_socket_dir(daemon.proc.state_dir)  # the same after the restart

        async def succeeded() -> int:
            states = await env.embedded_states(socket_dir)
            if states is None:
                return 0  # mid-restart
            assert states["failed"] == states["deleted"] == 0, states
            return states["succeeded"]

        await wait_until(lambda: env.at_least(succeeded, LOAD // 10), timeout=60, message="load")
        await asyncio.to_thread(env.restart_embedded_postgres, daemon.proc.state_dir)
        assert await succeeded() < LOAD, "the restart must land while jobs are still queued"

        down = await daemon.wait_log("database unavailable; jobs wait until it is back")
        assert down["level"] == "error"
        await daemon.wait_log("database reachable again")
        await asyncio.to_thread(daemon.proc.wait_for_notify, "STATUS=database unavailable", 10)
        await wait_until(lambda: env.at_least(succeeded, LOAD), timeout=90, message="every job")
        queues = json.loads(await daemon.cli("queues", "--json"))["queues"]
        [default] = [q for q in queues if q["name"] == "default"]
        assert default["counts"]["succeeded"] == LOAD
        assert sum(n for state, n in default["counts"].items() if state != "succeeded") == 0
        # READY was never taken back: no STOPPING=1, and the same process kept serving.
        await asyncio.to_thread(daemon.proc.wait_for_notify, "STATUS=ready", 10)
        assert "STOPPING=1" not in daemon.proc.notifications
        assert daemon.alive()
        assert await daemon.stop() == 0
    finally:
        await asyncio.to_thread(env.stop_embedded_postgres, daemon.proc.state_dir)


@pytest.mark.timeout(240)
async def test_an_s3_outage_of_30_s_during_stores(
    daemon_factory: Any,
    db_dsn: str,
    db_pool: asyncpg.Pool,
    restartable_s3_server: MotoServer,
    tmp_path: Path,
) -> None:
    s3 = restartable_s3_server
    storage = env.s3_storage(s3)
    async with Sandbox(shows=S3_SHOWS, quota_per_cookie=QUOTA) as box:
        conf = env.config(db_dsn, box, storage=storage)
        daemon = env.launch(daemon_factory, "s3", conf)
        await daemon.start()
        await daemon.add_credential()
        await daemon.cli("enqueue", "refresh_available_shows")
        await env.settled(db_pool, timeout=60, message="the show list")
        shows = sorted(await env.addic7ed_ids(db_pool))[:2]
        await daemon.enqueue("refresh_single_show", ({"show_id": i} for i in shows))
        await env.settled(db_pool, timeout=60, message="two refreshed shows")

        # Downloads first, their stores held back: every store then runs into the outage
        # (moto keeps no objects across its restart, so nothing may be stored before it).
        await daemon.cli("pause", "store-subtitle")
        wanted = await env.downloadable(db_pool, box, S3_DOWNLOADS)
        assert len(wanted) == S3_DOWNLOADS
        await daemon.enqueue("download_subtitle", ({"subtitle_id": i} for i in wanted))

        async def stores_waiting() -> bool:
            return (await env.job_states(db_pool, "store_subtitle"))["ready"] == len(wanted)

        await wait_until(stores_waiting, timeout=30, message="downloads done, stores waiting")
        await asyncio.to_thread(s3.stop)
        outage = env.Deadline(OUTAGE_SECONDS)
        await daemon.cli("resume", "store-subtitle")

        async def outage_over() -> bool:
            # Nothing is recorded as stored while S3 is away: the upload comes first.
            assert await env.stored_paths(db_pool) == {}
            return outage.left() == 0

        await wait_until(outage_over, timeout=OUTAGE_SECONDS + 5, interval=0.5, message="outage")
        stores = await db_pool.fetch(
            "SELECT state, attempt, last_error FROM jobs.jobs WHERE name = 'store_subtitle'"
        )
        assert all(r["attempt"] >= 1 and "StorageError" in r["last_error"] for r in stores)
        assert {r["state"] for r in stores} <= {"scheduled", "ready", "running"}
        await asyncio.to_thread(s3.start)

        await env.settled(db_pool, timeout=120, message="every store after the outage")
        assert await env.bad_jobs(db_pool) == []
        assert sorted(await env.stored_paths(db_pool)) == sorted(wanted)
        files = await daemon.read_back(wanted, tmp_path / "read-back")
        assert files == await env.upstream_files(box, db_pool, wanted)
        assert await daemon.stop() == 0


@pytest.mark.timeout(180)
async def test_an_upstream_fault_storm_opens_the_breaker_and_the_catalogue_converges(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    async with Sandbox(shows=STORM_SHOWS) as box:
        breaker = {"breaker_min_calls": 8, "breaker_open_s": 1.0}
        conf = env.config(db_dsn, box, scale=0.005, addic7ed=breaker, tmdb=breaker)
        daemon = env.launch(daemon_factory, "storm", conf)
        await daemon.start()
        await daemon.add_credential()
        await daemon.cli("enqueue", "refresh_available_shows")
        await env.settled(db_pool, timeout=60, message="the calm first sync")
        linked = await env.addic7ed_ids(db_pool)
        refreshed = sorted(linked)[:STORM_REFRESHED]

        box.faults.error_rate, box.faults.reset_rate, box.faults.latency = 0.5, 0.1, 0.2
        await daemon.cli("enqueue", "refresh_available_shows")
        await daemon.enqueue("refresh_single_show", ({"show_id": i} for i in refreshed))
        opened = await daemon.wait_log("circuit opened", timeout=30)
        assert opened["upstream"] in ("addic7ed", "tmdb")
        storm = env.Deadline(STORM_SECONDS)
        seen_waiting = 0

        async def storm_over() -> bool:
            # Jobs that failed during the storm wait for a retry; none may give up for good.
            nonlocal seen_waiting
            assert await env.bad_jobs(db_pool) == []
            waiting = await db_pool.fetchval(
                "SELECT count(*) FROM jobs.jobs WHERE state = 'scheduled' AND attempt >= 1"
            )
            seen_waiting = max(seen_waiting, waiting)
            return storm.left() == 0 and seen_waiting >= 3

        await wait_until(storm_over, timeout=STORM_SECONDS + 30, message="a storm with retries")
        box.faults.error_rate, box.faults.reset_rate, box.faults.latency = 0, 0, 0

        await env.settled(db_pool, timeout=90, message="the catalogue after the storm")
        assert await env.bad_jobs(db_pool) == []
        expected = {i: env.expected_show(box, linked[i]) for i in refreshed}
        assert await env.show_counts(db_pool, refreshed) == expected
        assert await daemon.stop() == 0


async def test_poison_and_loop_hogging_jobs_do_not_stop_other_queues(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    # scale 1: the crash job's retry waits its spec's 0.1 s.
    daemon = env.launch(daemon_factory, "poison", env.config(db_dsn, scale=1.0))
    await daemon.start()
    [crash] = await daemon.enqueue("crash", [{}])
    [hog] = await daemon.enqueue("hog", [{}])
    await wait_until(lambda: _in_state(db_pool, hog, "running", "failed"), message="hog started")
    # Work for the default queue while the poison job retries and the hog holds the loop.
    noops = await daemon.enqueue("noop", [{"sleep_ms": 20}] * 200)

    async def noops_done() -> bool:
        return (await env.job_states(db_pool, "noop"))["succeeded"] == len(noops)

    await wait_until(noops_done, timeout=30, message="every noop succeeded")
    await wait_until(
        lambda: _in_state(db_pool, crash, "failed"), timeout=15, message="crash failed"
    )
    await wait_until(lambda: _in_state(db_pool, hog, "failed"), timeout=15, message="hog cut")

    poisoned = await _job(db_pool, crash)
    assert poisoned["attempt"] == 3 and "PoisonError" in poisoned["last_error"]
    cut = await _job(db_pool, hog)
    assert cut["attempt"] == 1 and "JobBlockedLoop" in cut["last_error"]
    # Cut by the loop guard about a second after its timeout, not after its 60 s sleep.
    assert (cut["finished_at"] - cut["started_at"]).total_seconds() < 5
    assert daemon.alive()
    assert "STOPPING=1" not in daemon.proc.notifications
    assert await daemon.stop() == 0


async def test_sigterm_puts_a_long_job_back_without_spending_an_attempt(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    conf = env.config(db_dsn, shutdown={"grace_seconds": 0.5})
    daemon = env.launch(daemon_factory, "sigterm", conf)
    await daemon.start()
    job = json.loads(await daemon.cli("enqueue", "noop", "sleep_ms=4000", "--json"))["id"]
    # 'running' in the table only means claimed; a quick job queued behind it finishing means the
    # long one has started (a queue starts what it claimed in order).
    quick = json.loads(await daemon.cli("enqueue", "noop", "--json"))["id"]
    await daemon.wait_log("job finished", id=quick)
    assert await daemon.stop() == 0  # one SIGTERM: the grace period runs out, the job goes back
    assert "STOPPING=1" in daemon.proc.notifications
    row = await _job(db_pool, job)
    assert (row["state"], row["attempt"]) == ("ready", 0)
    assert (await daemon.wait_log("job finished", id=job))["outcome"] == "interrupted"

    await daemon.start()
    await wait_until(lambda: _in_state(db_pool, job, "succeeded"), timeout=15, message="job done")
    row = await _job(db_pool, job)
    assert (row["state"], row["attempt"], row["interruptions"]) == ("succeeded", 1, 0)
    assert await daemon.stop() == 0
