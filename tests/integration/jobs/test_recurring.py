"""Recurring jobs: cron parsing (standard weekdays, UTC), config errors, and a slot enqueued
exactly once under double fires, across restarts, and after downtime within the grace."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from structlog.testing import capture_logs

from addicted_jobs.jobs.cron import TICK, latest_fire, parse_cron
from addicted_jobs.jobs.recurring import RecurringScheduler, build_plan
from addicted_jobs.jobs.spec import default_registry
from addicted_jobs.settings import ConfigError, RecurringSettings
from tests.support import wait_until
from tests.support.engine import EngineFactory

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 02:00 UTC


def fires(expr: str, start: datetime, n: int) -> list[datetime]:
    trigger, out, t = parse_cron(expr), [], start
    for _ in range(n):
        t = trigger.get_next_fire_time(None, t)
        out.append(t)
        t += timedelta(seconds=1)
    return out


def test_weekdays_follow_standard_cron_not_apscheduler_numbering() -> None:
    # The original `10 2 * * */2`: Sun, Tue, Thu, Sat (0 = Sunday), at 02:10 UTC.
    days = {t.strftime("%a") for t in fires("10 2 * * */2", T0, 8)}
    assert days == {"Sun", "Tue", "Thu", "Sat"}
    assert {t.strftime("%a") for t in fires("0 0 * * 1-5", T0, 10)} == {
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
    }
    assert {t.strftime("%a") for t in fires("0 0 * * 7,sat", T0, 4)} == {"Sat", "Sun"}
    assert fires("0 2 * * *", T0, 2) == [T0, T0 + timedelta(days=1)]
    assert fires("11 * * * *", T0, 1) == [T0 + timedelta(minutes=11)]
    assert fires("*/20 * * * * *", T0, 3)[1] - fires("*/20 * * * * *", T0, 3)[0] == timedelta(
        seconds=20
    )
    assert fires("@daily", T0, 1) == [T0 + timedelta(hours=22)]


@pytest.mark.parametrize(
    "expr, reason",
    [
        ("0 2 * *", "4 fields"),
        ("61 * * * *", "61"),
        ("0 0 1 * 1", "not both"),
        ("0 0 * * 8", "weekday"),
        ("0 0 * * 5-1", "backwards"),
    ],
)
def test_a_bad_cron_is_a_config_error_naming_the_job(expr: str, reason: str) -> None:
    config = {"nightly": RecurringSettings(cron=expr, job="noop")}
    with pytest.raises(ConfigError, match=r"recurring\.nightly\.cron") as caught:
        build_plan(config, default_registry())
    assert reason in str(caught.value)


def test_unknown_jobs_are_config_errors_and_bad_args_too() -> None:
    config = {"refresh_available_shows": RecurringSettings(cron="0 2 * * *")}
    with pytest.raises(ConfigError, match="recurring.refresh_available_shows: no job named"):
        build_plan(config, default_registry())
    with capture_logs() as logs:  # a registry still being assembled only warns
        assert build_plan(config, default_registry(), strict=False) == []
    assert logs[0]["log_level"] == "warning"
    with pytest.raises(ConfigError, match="recurring.n.args"):
        build_plan(
            {"n": RecurringSettings(cron="0 2 * * *", job="noop", args={"zzz": 1})},
            default_registry(),
        )


def test_latest_fire_finds_the_newest_slot_in_the_window() -> None:
    hourly = parse_cron("11 * * * *")
    now = T0 + timedelta(hours=5, minutes=20)
    assert latest_fire(hourly, T0, now) == T0 + timedelta(hours=5, minutes=11)
    assert latest_fire(hourly, now - timedelta(minutes=5), now) is None
    every_second = parse_cron("* * * * * *")
    assert latest_fire(every_second, T0, T0 + timedelta(seconds=3.5)) == T0 + timedelta(seconds=3)


class CountingTrigger:
    """A cron trigger that counts the fire times asked of it."""

    def __init__(self, expr: str) -> None:
        self.trigger = parse_cron(expr)
        self.probes = 0

    def get_next_fire_time(self, previous: datetime | None, now: datetime) -> datetime | None:
        self.probes += 1
        found: datetime | None = self.trigger.get_next_fire_time(previous, now)
        return found


def test_latest_fire_answers_none_or_one_due_slot_in_one_or_two_probes() -> None:
    # Every start checks each recurring entry for a missed slot while the first jobs are being
    # claimed (usually none), and every timer fire asks for the one slot just due: the doubling
    # search took ~10 probes for either.
    hourly = CountingTrigger("11 * * * *")
    now = T0 + timedelta(hours=5, minutes=20)
    assert latest_fire(hourly, now - timedelta(minutes=5), now) is None  # type: ignore[arg-type]
    assert hourly.probes == 1
    hourly.probes = 0
    due = T0 + timedelta(hours=5, minutes=11)
    assert latest_fire(hourly, due - timedelta(seconds=30), now) == due  # type: ignore[arg-type]
    assert hourly.probes == 2
    assert latest_fire(hourly, T0, now) == due  # type: ignore[arg-type]


@pytest.mark.parametrize("expr", ["* * * * * *", "*/7 * * * *", "11 * * * *", "0 2 * * *"])
def test_latest_fire_agrees_with_walking_every_slot(expr: str) -> None:
    trigger = parse_cron(expr)
    now = T0 + timedelta(hours=30, minutes=20, seconds=5)
    for back in (timedelta(seconds=s) for s in (0.5, 1, 59, 61, 420, 3600, 7201, 86_400, 108_000)):
        after = now - back
        walked, slot = None, trigger.get_next_fire_time(None, after + TICK)
        while slot is not None and slot <= now:
            walked, slot = slot, trigger.get_next_fire_time(slot, slot + TICK)
        assert latest_fire(trigger, after, now) == walked, (expr, back)


# ---- exactly once --------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def noop_jobs(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobs.jobs WHERE name = 'noop'"))


def plan(cron: str) -> list:  # type: ignore[type-arg]
    return build_plan({"tick": RecurringSettings(cron=cron, job="noop")}, default_registry())


async def test_a_double_fire_of_one_slot_enqueues_once(make_engine: EngineFactory) -> None:
    engine = await make_engine(default_registry(), start=False)
    scheduler = RecurringScheduler(engine, plan("0 2 * * *"), 3600, clock=Clock(T0))
    results = await asyncio.gather(*(scheduler.fire("tick", T0) for _ in range(10)))
    fired = [r for r in results if r is not None]
    assert len(fired) == 1 and fired[0].created
    assert await noop_jobs(engine.pool) == 1
    assert await scheduler.fire("tick", T0 - timedelta(days=1)) is None  # older slots never fire


async def test_restart_never_refires_a_slot_and_catches_up_a_missed_one_once(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(default_registry(), start=False)
    await engine.pool.execute(
        "INSERT INTO jobs.recurring (name, created_at) VALUES ('tick', $1)", T0 - timedelta(days=30)
    )
    clock = Clock(T0 + timedelta(seconds=30))  # started just after 02:00: the slot was missed
    first = RecurringScheduler(engine, plan("0 2 * * *"), 3600, clock=clock)
    assert [f.slot for f in await first.catch_up()] == [T0]
    second = RecurringScheduler(engine, plan("0 2 * * *"), 3600, clock=clock)  # a restart
    assert await second.catch_up() == []
    assert await noop_jobs(engine.pool) == 1

    clock.now = T0 + timedelta(days=1, hours=2)  # down over the next 02:00, beyond a 1 h grace
    assert await RecurringScheduler(engine, plan("0 2 * * *"), 3600, clock=clock).catch_up() == []
    clock.now = T0 + timedelta(days=2, minutes=30)  # down over 02:00 again, within the grace
    third = RecurringScheduler(engine, plan("0 2 * * *"), 3600, clock=clock)
    assert [f.slot for f in await third.catch_up()] == [T0 + timedelta(days=2)]
    assert await noop_jobs(engine.pool) == 2


async def test_a_new_entry_does_not_fire_slots_from_before_it_existed(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(default_registry(), start=False)
    scheduler = RecurringScheduler(engine, plan("* * * * *"), 3600)
    assert await scheduler.catch_up() == []


async def test_every_second_cron_enqueues_each_slot_once_across_a_restart(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(default_registry())
    fired = []
    for _ in range(2):  # run, stop, start again on the same database
        scheduler = RecurringScheduler(engine, plan("* * * * * *"), 60)
        await scheduler.start()
        await wait_until(lambda s=scheduler: len(s.recent) >= 2, timeout=10, message="2 fires")
        await scheduler.stop()
        fired += [f for f in scheduler.recent if f.slot is not None]
    slots = [f.slot for f in fired]
    assert len(slots) == len(set(slots)) and all(f.created for f in fired)
    assert await noop_jobs(engine.pool) == len(slots)
    last = await engine.pool.fetchval("SELECT last_fire FROM jobs.recurring WHERE name = 'tick'")
    assert last == max(slots)


async def test_trigger_fires_now_and_reload_changes_the_schedule(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(default_registry())
    scheduler = RecurringScheduler(engine, plan("0 2 * * *"), 60)
    await scheduler.start()
    try:
        manual = await scheduler.fire("tick", None)
        assert manual is not None and manual.created
        [entry] = await scheduler.describe()
        assert entry["last_job_id"] == manual.job_id and entry["last_slot"] is None
        assert entry["last_fire"] == entry["last_trigger"] is not None  # LAST FIRE counts it
        scheduler.apply(plan("30 4 * * *"))
        [entry] = await scheduler.describe()
        assert entry["cron"] == "30 4 * * *" and entry["next_fire"].strftime("%H:%M") == "04:30"
        next_slot = await wait_until(lambda: scheduler.next_slot("tick"), message="rescheduled")
        assert next_slot.strftime("%H:%M") == "04:30"
        scheduler.apply([])
        assert scheduler.next_slot("tick") is None and await scheduler.describe() == []
    finally:
        await scheduler.stop()


# ---- clock steps ---------------------------------------------------------------------------------


class SteppedClock:
    """The wall clock, which a test steps forward or back (as NTP or an operator would)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_a_clock_stepped_back_keeps_firing_and_never_refires_a_slot(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(default_registry())
    clock = SteppedClock(timedelta(days=1))  # a day ahead
    scheduler = RecurringScheduler(engine, plan("* * * * * *"), 60, clock=clock)

    async def fires_after(mark: int, n: int) -> bool:
        return len(scheduler.recent) >= mark + n

    with capture_logs() as logs:
        await scheduler.start()
        try:
            await wait_until(lambda: fires_after(0, 2), message="fires a day ahead")
            clock.offset = timedelta(0)  # back to the true time: slots before last_fire
            mark = len(scheduler.recent)
            await wait_until(lambda: fires_after(mark, 2), message="fires after the step back")
            assert all(f.slot and f.slot < datetime.now(UTC) for f in list(scheduler.recent)[mark:])
            clock.offset = timedelta(seconds=-5)  # back 5 s: those 5 slots fired already
            mark = len(scheduler.recent)
            await wait_until(lambda: fires_after(mark, 2), timeout=15, message="fires again")
        finally:
            await scheduler.stop()
    slots = [f.slot for f in scheduler.recent if f.slot is not None]
    assert len(slots) == len(set(slots)), "a slot fired twice"
    assert await noop_jobs(engine.pool) == len(slots)
    steps = [e for e in logs if e["event"].startswith("wall clock stepped")]
    assert [e["step_s"] < 0 for e in steps] == [True, True]  # each step logged once
    last = await engine.pool.fetchval("SELECT last_fire FROM jobs.recurring WHERE name = 'tick'")
    assert last < datetime.now(UTC)


async def test_a_restart_after_the_clock_stepped_back_fires_the_current_slot(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(default_registry(), start=False)
    clock = Clock(T0 + timedelta(days=365, seconds=30))  # a year ahead
    ahead = RecurringScheduler(engine, plan("0 2 * * *"), 3600, clock=clock)
    assert await ahead.fire("tick", T0 + timedelta(days=365)) is not None
    clock.now = T0 + timedelta(seconds=30)  # restarted on the true time
    with capture_logs() as logs:
        fired = await RecurringScheduler(engine, plan("0 2 * * *"), 3600, clock=clock).catch_up()
    assert [f.slot for f in fired] == [T0]
    assert any("stepped back" in e["event"] for e in logs)
    # The true clock reaching the slot fired while a year ahead does not fire it twice.
    clock.now = T0 + timedelta(days=365, seconds=30)
    assert await ahead.fire("tick", T0 + timedelta(days=365)) is None
    assert await noop_jobs(engine.pool) == 2
