"""What a one-time migration declares and sees (spec 8): the OneTimeMigration base class and the
MigrationContext handed to its `execute`. The runner that records attempts is jobs/onetime.py;
this module stays free of the database driver so the engine's face stays light to import.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import asyncpg

# Each notification asks systemd for this much more start-up time; the keep-alive renews it well
# before it runs out, so a slow but live migration never trips TimeoutStartSec.
EXTEND_S = 60.0
PROGRESS_EVERY_S = 5.0

Enqueue = Callable[..., Awaitable[Any]]


class StartupNotifier(Protocol):
    """systemd's side of a long start-up (systemd.Notifier): more time, and a status line."""

    def extend_timeout(self, seconds: float) -> bool: ...

    def status(self, text: str) -> bool: ...


class OneTimeMigrationError(RuntimeError):
    """A one-time migration could not run or stopped start-up; the message says which and why."""


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
