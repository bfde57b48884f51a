"""One-time data migrations (spec 8): dated classes run once to success at start-up, one at a time
in date order, each attempt recorded in table onetime_migrations. Knows nothing of the domain.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Protocol

import asyncpg
import structlog

from addicted_jobs.db import LOCK_NAMESPACE, release_session_lock

log = structlog.get_logger("addicted_jobs.onetime")

ONETIME_LOCK = 3  # advisory lock key beside db.MIGRATION_LOCK and db.INSTANCE_LOCK
ERROR_TEXT_LIMIT = 8000
# Each notification asks systemd for this much more start-up time; the keep-alive renews it well
# before it runs out, so a slow but live migration never trips TimeoutStartSec.
EXTEND_S = 60.0
KEEPALIVE_S = 15.0
PROGRESS_EVERY_S = 5.0
INTERRUPTED = (
    "interrupted: the process ended while this migration ran (crash, kill or power loss); "
    "found at the next start"
)

Enqueue = Callable[..., Awaitable[Any]]


class MigrationState(IntEnum):
    SUCCESS = 0
    RUNNING = 1
    FAIL = 2


class StartupNotifier(Protocol):
    def extend_timeout(self, seconds: float) -> bool: ...

    def status(self, text: str) -> bool: ...


class OneTimeMigrationError(RuntimeError):
    pass


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


class OneTimeMigration:
    """Subclass, set `date = (year, month, day)`, implement `execute`. Dates are kept as numbers:
    the original has 2023-2-29, which no calendar accepts. `required = True` makes a failure stop
    start-up instead of being retried at the next one."""

    date: ClassVar[tuple[int, int, int]]
    required: ClassVar[bool] = False

    async def execute(self, ctx: MigrationContext) -> None:
        raise NotImplementedError

    @property
    def key(self) -> str:
        year, month, day = self.date
        return f"{year}-{month}-{day}_{type(self).__name__}"

    @property
    def order(self) -> tuple[tuple[int, int, int], str]:
        return self.date, type(self).__name__


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


@dataclass
class MigrationContext:
    """What a running migration gets: the pool, its logger, progress reports and enqueue."""

    key: str
    pool: asyncpg.Pool
    log: Any
    notifier: StartupNotifier | None = None
    enqueue_job: Enqueue | None = None
    _last_report: float = field(default=float("-inf"), init=False, repr=False)

    def progress(
        self, message: str, *, done: int | None = None, total: int | None = None, **fields: Any
    ) -> None:
        """Log how far the migration is and buy more start-up time from systemd; call it as
        often as you like, it reports every few seconds and at the end."""
        now = time.monotonic()
        if now - self._last_report < PROGRESS_EVERY_S and not (total and done == total):
            return
        self._last_report = now
        if total:
            fields["percent"] = round(100 * (done or 0) / total, 1)
        self.log.info(message, done=done, total=total, **fields)
        if self.notifier is not None:
            self.notifier.extend_timeout(EXTEND_S)
            if done is not None and total:
                self.notifier.status(f"one-time migration {self.key}: {done}/{total}")

    async def enqueue(self, name: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
        if self.enqueue_job is None:
            raise OneTimeMigrationError(f"{self.key}: no job engine to enqueue {name!r} into")
        return await self.enqueue_job(name, args or {}, **kw)


@dataclass(frozen=True)
class Outcome:
    key: str
    succeeded: bool
    duration_ms: float
    error: str | None = None


@dataclass
class Report:
    ran: list[Outcome] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.ran if not o.succeeded]


def _error_text(exc: BaseException) -> str:
    detail = "".join(traceback.format_exception(exc))
    return f"{type(exc).__name__}: {exc}\n{detail}"[:ERROR_TEXT_LIMIT]


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
        while not await conn.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, ONETIME_LOCK
        ):
            if time.monotonic() > deadline:
                raise MigrationsBusy(
                    f"another process has held the one-time migration lock on this database for "
                    f"over {lock_wait_s:g} s"
                )
            await asyncio.sleep(0.1)
        try:
            report = Report()
            rows = await conn.fetch(
                """UPDATE onetime_migrations SET state = 2, error = $1, updated_at = now()
                   WHERE state = 1 RETURNING migration_type""",
                INTERRUPTED,
            )
            report.interrupted = [r["migration_type"] for r in rows]
            for key in report.interrupted:
                log.warning("one-time migration was interrupted; it runs again", migration=key)
            done = {
                r["migration_type"]
                for r in await conn.fetch(
                    "SELECT migration_type FROM onetime_migrations WHERE state = 0"
                )
            }
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
) -> Outcome:
    key = migration.key
    row_id = await pool.fetchval(
        "INSERT INTO onetime_migrations (migration_type, state) VALUES ($1, 1) RETURNING id", key
    )
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
        error = _error_text(exc)
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
    return Outcome(key, error is None, duration_ms, error)


async def _record(
    pool: asyncpg.Pool, row_id: int, state: MigrationState, error: str | None, started: float
) -> float:
    duration_ms = round((time.monotonic() - started) * 1000, 2)
    await pool.execute(
        """UPDATE onetime_migrations SET state = $2, error = $3, duration_ms = $4,
                  finished_at = now(), updated_at = now() WHERE id = $1""",
        row_id,
        int(state),
        error,
        duration_ms,
    )
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
