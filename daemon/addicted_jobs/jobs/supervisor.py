"""Tracks every background task: a failure is logged with its traceback and kept for status,
never lost in an unobserved task. Critical tasks report their death to a callback (shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Supervisor:
    def __init__(
        self, on_critical_failure: Callable[[str, BaseException], None] | None = None
    ) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._critical: set[str] = set()
        self._on_critical = on_critical_failure
        self.failures: list[tuple[str, str]] = []
        self.stopping = False  # set at shutdown: vital loops then end on purpose

    def spawn(
        self, coro: Coroutine[Any, Any, Any], name: str, *, critical: bool = False
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        if critical:
            self._critical.add(name)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        name = task.get_name()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            if name in self._critical and not self.stopping:
                log.error("background task ended unexpectedly", task=name)
            return
        self.failures.append((name, f"{type(exc).__name__}: {exc}"))
        log.error("background task failed", task=name, exc_info=exc)
        if name in self._critical and self._on_critical is not None:
            self._on_critical(name, exc)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def cancel_all(self, timeout: float = 5.0) -> None:
        self.stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
