"""Recurring jobs: APScheduler 3 cron triggers (UTC) whose only effect is an enqueue.

A fire claims its slot in `jobs.recurring_fires` in the same transaction as the job's insert, so
one slot is enqueued at most once, across restarts, under a double fire and whatever the wall
clock does. A slot missed while the daemon was down fires once at start when it is within the
misfire grace. The timers are our own loop on the scheduler's clock (not APScheduler's, which
reads the system clock itself and sleeps until a slot computed before a clock step): it wakes at
least every TICK_MAX_S, so a clock stepped back is noticed within a second, logged once, and the
slots of the new time fire (issue 14).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.triggers.cron import CronTrigger
from pydantic import ValidationError

from addicted_jobs.db import DB_ERRORS, Conn
from addicted_jobs.jobs import store
from addicted_jobs.jobs.context import JobRequest
from addicted_jobs.jobs.cron import TICK, latest_fire, parse_cron
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.jobs.spec import Registry
from addicted_jobs.settings import ConfigError, RecurringSettings

log = structlog.get_logger("addicted_jobs.recurring")


@dataclass(frozen=True)
class Entry:
    name: str
    job: str
    args: dict[str, Any]
    cron: str
    enabled: bool
    trigger: CronTrigger = field(compare=False)


@dataclass(frozen=True)
class Fire:
    name: str
    slot: datetime | None  # None for a manual trigger
    job_id: int
    created: bool


def check_crons(config: Mapping[str, RecurringSettings]) -> None:
    """Cron syntax alone, checked before anything starts (ConfigError naming the entry)."""
    for name, conf in config.items():
        try:
            parse_cron(conf.cron)
        except ValueError as exc:
            raise ConfigError(f"recurring.{name}.cron = {conf.cron!r}: {exc}") from None


def build_plan(
    config: Mapping[str, RecurringSettings], registry: Registry, *, strict: bool = True
) -> list[Entry]:
    """Validate every entry (ConfigError naming it). With strict=False an entry whose job is not
    registered is skipped with a warning (a registry that is still being assembled)."""
    entries = []
    for name, conf in config.items():
        job = conf.job or name
        try:
            trigger = parse_cron(conf.cron)
        except ValueError as exc:
            raise ConfigError(f"recurring.{name}.cron = {conf.cron!r}: {exc}") from None
        if job not in registry:
            if strict:
                raise ConfigError(
                    f"recurring.{name}: no job named {job!r}; known jobs: {', '.join(sorted(registry.specs))}"
                )
            log.warning("recurring job skipped: no such job is registered", recurring=name, job=job)
            continue
        try:
            registry.get(job).parse(conf.args)
        except ValidationError as exc:
            raise ConfigError(f"recurring.{name}.args do not fit job {job!r}: {exc}") from None
        entries.append(Entry(name, job, dict(conf.args), conf.cron, conf.enabled, trigger))
    return entries


FIRES_KEPT = timedelta(days=2)

TICK_MAX_S = 1.0  # the timer loop's longest sleep: how soon a clock step is noticed
CLOCK_STEP_S = 2.0  # wall time and monotonic time disagreeing by more than this is a step


class RecurringScheduler:
    def __init__(
        self,
        engine: Engine,
        entries: list[Entry],
        misfire_grace_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.entries = {e.name: e for e in entries}
        self.grace = timedelta(seconds=misfire_grace_s)
        self.clock = clock
        self.recent: deque[Fire] = deque(maxlen=200)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._next: dict[str, datetime] = {}  # the next slot of each enabled entry
        # Entries an operator disabled at run time (jobs.recurring.disabled_at), read at start.
        self.disabled: set[str] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Register the entries, fire slots missed within the grace, then start the timers."""
        try:
            await self.catch_up()
        except DB_ERRORS as exc:  # the timers still run; the next start catches up again
            log.error("could not check for missed recurring fires", error=str(exc))
        self._timer = asyncio.get_running_loop().create_task(self._run_timers())

    def next_slot(self, name: str) -> datetime | None:
        """When the timers fire entry `name` next (None: disabled, unknown or never again)."""
        return self._next.get(name)

    async def _run_timers(self) -> None:
        """Fire each entry's slots as the scheduler's clock reaches them. A clock stepped back
        (wall time behind what monotonic time says) resets every entry to its next slot after
        the new time; a step forward fires the newest slot passed over, once (coalesced)."""
        wall, mono = self.clock(), time.monotonic()
        while True:
            now, now_mono = self.clock(), time.monotonic()
            step = (now - wall).total_seconds() - (now_mono - mono)
            wall, mono = now, now_mono
            if abs(step) > CLOCK_STEP_S:
                log.warning(
                    "wall clock stepped; recurring jobs follow the new time",
                    step_s=round(step, 1),
                    now=now.isoformat(),
                )
                if step < 0:
                    self._next.clear()
            for entry in self.entries.values():
                if not entry.enabled or entry.name in self.disabled:
                    continue
                due = self._next.get(entry.name)
                if due is None:
                    due = entry.trigger.get_next_fire_time(None, now)
                if due is not None and due <= now:
                    slot = latest_fire(entry.trigger, due - TICK, now) or due
                    self.spawn(self.fire_when_possible(entry.name, slot))
                    due = entry.trigger.get_next_fire_time(slot, slot + TICK)
                if due is None:
                    self._next.pop(entry.name, None)
                else:
                    self._next[entry.name] = due
            soonest = min(self._next.values(), default=None)
            wait = TICK_MAX_S if soonest is None else (soonest - self.clock()).total_seconds()
            await asyncio.sleep(min(max(wait, 0.001), TICK_MAX_S))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.wait([self._timer], timeout=5.0)
        self._timer = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)

    def apply(self, entries: list[Entry]) -> None:
        """Reload: schedule new and changed entries, drop removed and disabled ones."""
        new = {e.name: e for e in entries}
        changed = [n for n, e in new.items() if self.entries.get(n) != e]
        removed = [n for n in self.entries if n not in new]
        for name in changed + removed:
            self._next.pop(name, None)  # the timer loop computes the new entry's next slot
        self.entries = new
        if changed or removed:
            log.info("recurring schedule changed", changed=changed, removed=removed)

    async def catch_up(self) -> list[Fire]:
        now = self.clock()
        rows = (await store.recurring_rows(self.engine.pool, ensure=list(self.entries))).values()
        known = {r["name"]: r["last_fire"] or r["created_at"] for r in rows}
        self.disabled = {r["name"] for r in rows if r["disabled_at"] is not None}
        last_fires = {r["name"]: r["last_fire"] for r in rows}
        fired = []
        for entry in self.entries.values():
            if not entry.enabled or entry.name in self.disabled:
                continue
            last_fire = last_fires[entry.name]
            if last_fire is not None and last_fire > now:
                log.warning(
                    "recurring job's last fire is in the future: the wall clock stepped back; "
                    "firing the slots of the current time",
                    recurring=entry.name,
                    last_fire=known[entry.name].isoformat(),
                    now=now.isoformat(),
                )
                known[entry.name] = now - self.grace
            after = max(known[entry.name], now - self.grace)
            slot = latest_fire(entry.trigger, after, now)
            if slot is not None:
                log.info(
                    "firing a recurring job missed while stopped", recurring=entry.name, slot=slot
                )
                fire = await self.fire(entry.name, slot)
                if fire is not None:
                    fired.append(fire)
        return fired

    async def fire_when_possible(self, name: str, slot: datetime) -> None:
        """A timer fire; a database outage is retried while the slot is within the grace."""
        delay = 0.5
        while True:
            try:
                await self.fire(name, slot)
                return
            except DB_ERRORS as exc:
                if self.clock() - slot > self.grace:
                    log.error("recurring fire lost to a database outage", recurring=name, slot=slot)
                    return
                log.warning("recurring fire waits for the database", recurring=name, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def fire(self, name: str, slot: datetime | None) -> Fire | None:
        """Enqueue entry `name` for `slot` (None: a manual trigger, always enqueued).

        Returns None when the slot had already fired."""
        entry = self.entries[name]
        job = self.engine.prepare(JobRequest(entry.job, entry.args))
        async with self.engine.pool.acquire() as conn, conn.transaction():
            if slot is not None and not await self._claim(conn, name, slot):
                log.debug("recurring slot already fired", recurring=name, slot=slot)
                return None
            # The engine's enqueue statement, inside the transaction that claimed the slot.
            [result] = await store.enqueue(conn, [job])
            await store.record_recurring_fire(conn, name, result.id, slot is None)
        self.engine.wake(job.queue)
        fire = Fire(name, slot, result.id, result.created)
        self.recent.append(fire)
        log.info(
            "recurring job fired",
            recurring=name,
            job=entry.job,
            slot=slot.isoformat() if slot else "manual",
            job_id=result.id,
            created=result.created,
        )
        return fire

    async def set_disabled(self, name: str, disabled: bool, by: str) -> bool:
        """An operator's disable/enable of entry `name`, stored so restarts and reloads keep it;
        returns whether it changed anything. The timer is removed or added at once."""
        changed = await store.set_recurring_disabled(self.engine.pool, name, disabled, by)
        if disabled:
            self.disabled.add(name)
            self._next.pop(name, None)
        else:
            self.disabled.discard(name)  # the timer loop computes its next slot
        return changed

    async def _claim(self, conn: Conn, name: str, slot: datetime) -> bool:
        """Take `slot` for entry `name` in the caller's transaction; False when it fired before.

        A slot older than the newest fired one is refused (a late timer) unless that newest one
        lies in the future by the scheduler's clock: the clock stepped back, and the slots of the
        new time fire. The fires table refuses any slot fired before, so none fires twice."""
        now = self.clock()
        last = await store.lock_recurring(conn, name)
        if last is not None and slot <= last and last <= now:
            return False
        return await store.claim_recurring_slot(conn, name, slot, min(now, slot) - FIRES_KEPT)

    async def describe(self) -> list[dict[str, Any]]:
        """Each entry: its config, `enabled` (the config's and no operator disable), who disabled
        it, and `last_fire`, the latest of the newest scheduled slot and the last manual trigger."""
        state = await store.recurring_rows(self.engine.pool)
        now = self.clock()
        out = []
        for entry in self.entries.values():
            row = state.get(entry.name)
            disabled_at = row["disabled_at"] if row else None
            on = entry.enabled and disabled_at is None
            fires = [row[k] for k in ("last_fire", "last_trigger") if row and row[k] is not None]
            out.append(
                {
                    "name": entry.name,
                    "job": entry.job,
                    "args": entry.args,
                    "cron": entry.cron,
                    "enabled": on,
                    "enabled_in_config": entry.enabled,
                    "disabled_at": disabled_at,
                    "disabled_by": row["disabled_by"] if row else None,
                    "last_fire": max(fires) if fires else None,
                    "last_slot": row["last_fire"] if row else None,
                    "last_trigger": row["last_trigger"] if row else None,
                    "last_job_id": row["last_job_id"] if row else None,
                    "next_fire": entry.trigger.get_next_fire_time(None, now) if on else None,
                }
            )
        return out
