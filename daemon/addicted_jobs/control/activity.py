"""What `top` shows of the last hour without querying the jobs table: finished jobs per queue and
upstream attempts per upstream, counted per minute in memory as they happen (since the daemon
started; a restart begins a new hour).

A scan of the finished jobs of the last hour would read every row finished in it, once a second
for each `top`: at the engine's rates that is millions of rows; these counters cost an integer
increment per event.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MINUTES = 60


class _Series:
    """Counts per minute for the last MINUTES minutes, oldest first."""

    __slots__ = ("counts", "minute")

    def __init__(self, minute: int) -> None:
        self.counts = [0] * MINUTES
        self.minute = minute

    def advance(self, minute: int) -> None:
        gap = minute - self.minute
        if gap <= 0:
            return
        if gap >= MINUTES:
            self.counts = [0] * MINUTES
        else:
            self.counts = self.counts[gap:] + [0] * gap
        self.minute = minute


class Activity:
    """Per-minute event counts; the engine's on_finished and the upstream observers feed it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._jobs: dict[str, _Series] = {}
        self._upstream: dict[str, _Series] = {}

    def _add(self, table: dict[str, _Series], key: str) -> None:
        # Called for every finished job: one clock read, one lookup, one increment in the
        # common case (the same minute); the window moves only when the minute changes.
        minute = int(self.clock() // 60)
        series = table.get(key)
        if series is None:
            series = table[key] = _Series(minute)
        elif series.minute != minute:
            series.advance(minute)
        series.counts[-1] += 1

    def job_finished(self, name: str, queue: str, outcome: str, seconds: float) -> None:
        """Engine.on_finished: a run on `queue` ended (interrupted runs are not throughput)."""
        if outcome != "interrupted":
            self._add(self._jobs, queue)

    def upstream_attempt(self, upstream: str, result: str) -> None:
        self._add(self._upstream, upstream)

    def _snapshot(self, table: dict[str, _Series]) -> dict[str, list[int]]:
        minute = int(self.clock() // 60)
        for series in table.values():
            series.advance(minute)
        return {key: list(series.counts) for key, series in sorted(table.items())}

    def snapshot(self) -> dict[str, dict[str, list[int]]]:
        """{"jobs_per_minute": {queue: [60 counts]}, "upstream_per_minute": {upstream: [...]}},
        oldest minute first, the current (partial) minute last."""
        return {
            "jobs_per_minute": self._snapshot(self._jobs),
            "upstream_per_minute": self._snapshot(self._upstream),
        }
