"""One-time data migrations (spec 8): dated classes run once to success at start-up, one at a time
in date order, each attempt recorded in table onetime_migrations. Knows nothing of the domain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

import asyncpg
import structlog

from addicted_jobs.db import ONETIME_LOCK, release_session_lock, try_session_lock
from addicted_jobs.jobs import store
from addicted_jobs.jobs.migration import (
    EXTEND_S,
    Enqueue,
    MigrationContext,
    OneTimeMigration,
    OneTimeMigrationError,
    StartupNotifier,
)
from addicted_jobs.jobs.outcomes import error_text

log = structlog.get_logger("addicted_jobs.onetime")

ERROR_TEXT_LIMIT = 8000
KEEPALIVE_S = 15.0
INTERRUPTED = (
    "interrupted: the process ended while this migration ran (crash, kill or power loss); "
    "found at the next start"
)


class MigrationState(IntEnum):
    SUCCESS = 0
    RUNNING = 1
    FAIL = 2


class RequiredMigrationFailed(OneTimeMigrationError):
    def __init__(self, key: str, error: str) -> None:
        self.key, self.error = key, error
        first = error.splitlines()[0] if error else "no error text"
        super().__init__(
            f"required one-time migration {key} failed ({first}); start-up stopped. "
            "Fix the cause and start again: it is retried at every start until it succeeds"
        )


class MigrationsBusy(OneTimeMigrationError):
    pass


def _check_date(migration: OneTimeMigration) -> None:
    date = getattr(migration, "date", None)
    parts = date if isinstance(date, tuple) and len(date) == 3 else (0, 0, 0)
    if not all(isinstance(p, int) for p in parts) or not (
        1 <= parts[1] <= 12 and 1 <= parts[2] <= 31
    ):
        raise ValueError(
            f"{type(migration).__name__}: date must be (year, month, day), got {date!r}"
        )


class MigrationRegistry:
    """The registered migrations, validated (a date each, no two with one key) and in run order."""

    def __init__(self, migrations: Iterable[OneTimeMigration] = ()) -> None:
        self._by_key: dict[str, OneTimeMigration] = {}
        for migration in migrations:
            self.register(migration)

    def register(self, migration: OneTimeMigration) -> None:
        _check_date(migration)
        if migration.key in self._by_key:
            raise ValueError(f"one-time migration {migration.key} is registered twice")
        self._by_key[migration.key] = migration

    def ordered(self) -> list[OneTimeMigration]:
        return sorted(self._by_key.values(), key=lambda m: m.order)


@dataclass(frozen=True)
class MigrationOutcome:
    """One migration's attempt at this start: its key, whether it succeeded, how long it took
    (ms) and its error text (with the traceback) when it failed."""

    key: str
    succeeded: bool
    duration_ms: float
    error: str | None = None


@dataclass
class Report:
    ran: list[MigrationOutcome] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[MigrationOutcome]:
        return [o for o in self.ran if not o.succeeded]


async def run_pending(
    pool: asyncpg.Pool,
    migrations: Iterable[OneTimeMigration],
    *,
    notifier: StartupNotifier | None = None,
    enqueue: Enqueue | None = None,
    keepalive_s: float = KEEPALIVE_S,
    lock_wait_s: float = 30.0,
) -> Report:
    """Run every registered migration without a success record, in date then name order.

    A failure is recorded and logged and the next start tries again; a required migration's
    failure raises RequiredMigrationFailed after it is recorded.
    """
    registry = MigrationRegistry(migrations)
    async with pool.acquire() as conn:
        # Only the lock holder may call a running attempt dead, so two runners never meet. Right
        # after a kill -9 the dead runner's session may hold the lock a moment longer: wait a bit.
        deadline = time.monotonic() + lock_wait_s
        while not await try_session_lock(conn, ONETIME_LOCK):
            if time.monotonic() > deadline:
                raise MigrationsBusy(
                    f"another process has held the one-time migration lock on this database for "
                    f"over {lock_wait_s:g} s"
                )
            await asyncio.sleep(0.1)
        try:
            report = Report()
            report.interrupted = await store.onetime_sweep_interrupted(conn, INTERRUPTED)
            for key in report.interrupted:
                log.warning("one-time migration was interrupted; it runs again", migration=key)
            done = await store.onetime_succeeded(conn)
            pending = [m for m in registry.ordered() if m.key not in done]
            report.already_done = [m.key for m in registry.ordered() if m.key in done]
            if pending:
                log.info("one-time migrations to run", count=len(pending))
            for migration in pending:
                outcome = await _run_one(pool, migration, notifier, enqueue, keepalive_s)
                report.ran.append(outcome)
                if not outcome.succeeded and migration.required:
                    raise RequiredMigrationFailed(migration.key, outcome.error or "")
            if pending:
                log.info(
                    "one-time migrations finished",
                    succeeded=len(report.ran) - len(report.failed),
                    failed=[o.key for o in report.failed],
                )
            return report
        finally:
            await release_session_lock(conn, ONETIME_LOCK)


async def _run_one(
    pool: asyncpg.Pool,
    migration: OneTimeMigration,
    notifier: StartupNotifier | None,
    enqueue: Enqueue | None,
    keepalive_s: float,
) -> MigrationOutcome:
    key = migration.key
    row_id = await store.onetime_begin(pool, key)
    bound = log.bind(migration=key)
    bound.info("one-time migration started", required=migration.required)
    if notifier is not None:
        notifier.status(f"one-time migration {key}")
        notifier.extend_timeout(EXTEND_S)
    started = time.monotonic()
    ctx = MigrationContext(key, pool, bound, notifier, enqueue)
    beat = asyncio.create_task(_keep_alive(ctx, started, keepalive_s), name=f"keepalive-{key}")
    error: str | None = None
    try:
        await migration.execute(ctx)
    except Exception as exc:
        error = error_text(exc, ERROR_TEXT_LIMIT)
    except asyncio.CancelledError:
        # Stopped during start-up: say so now rather than leave it to the interrupted sweep.
        await asyncio.shield(
            _record(pool, row_id, MigrationState.FAIL, "cancelled: the daemon was stopped", started)
        )
        raise
    finally:
        beat.cancel()
    state = MigrationState.FAIL if error else MigrationState.SUCCESS
    duration_ms = await _record(pool, row_id, state, error, started)
    if error:
        bound.error("one-time migration failed", duration_ms=duration_ms, error=error)
    else:
        bound.info("one-time migration succeeded", duration_ms=duration_ms)
    return MigrationOutcome(key, error is None, duration_ms, error)


async def _record(
    pool: asyncpg.Pool, row_id: int, state: MigrationState, error: str | None, started: float
) -> float:
    duration_ms = round((time.monotonic() - started) * 1000, 2)
    await store.onetime_end(pool, row_id, int(state), error, duration_ms)
    return duration_ms


async def _keep_alive(ctx: MigrationContext, started: float, interval: float) -> None:
    """A migration busy in one long statement reports nothing: keep systemd patient, log it."""
    while True:
        await asyncio.sleep(interval)
        if ctx.notifier is not None:
            ctx.notifier.extend_timeout(EXTEND_S)
        ctx.log.info(
            "one-time migration still running", elapsed_s=round(time.monotonic() - started)
        )
