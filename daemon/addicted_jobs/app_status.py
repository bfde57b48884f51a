"""What the daemon tells systemd and operators about itself while it runs: the live STATUS= line
(running and ready jobs, the last failure), refreshed every few seconds, and what a reload
changed (applied at once, or waiting for a restart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from addicted_jobs.db import DB_ERRORS
from addicted_jobs.jobs import store
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.settings import Settings

log = structlog.get_logger("addicted_jobs")
STATUS_EVERY_S = 5.0
# What reload applies without a restart (App.reload_problem); every other change waits for one.
LIVE_KEYS = ("log.level", "queues.", "recurring.", "scheduler.misfire_grace_s")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _changed(old: Settings, new: Settings) -> list[str]:
    before, after = _flatten(old.model_dump(mode="json")), _flatten(new.model_dump(mode="json"))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def reload_changes(previous: Settings, new: Settings, started: Settings) -> dict[str, list[str]]:
    """What a reload did, as dotted key names (a secret's value never leaves): `applied`, the
    live keys that differ from the previous configuration; `needs_restart`, every other key
    that differs from the configuration the daemon started with (still pending after several
    reloads, until a restart)."""
    applied = [k for k in _changed(previous, new) if k.startswith(LIVE_KEYS)]
    restart = [k for k in _changed(started, new) if not k.startswith(LIVE_KEYS)]
    return {"applied": applied, "needs_restart": restart}


class StatusLine:
    """Keeps the last failure (from Engine.on_finished) and renders the STATUS= line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_failure: tuple[str, str, float] | None = None  # job, outcome, when

    def job_finished(self, name: str, queue: str, outcome: str, seconds: float) -> None:
        if outcome in ("failed", "deleted", "retry"):
            self.last_failure = (name, outcome, self.clock())

    def render(self, running: int, ready: int | None) -> str:
        """'running 3, ready 120; last failure 2m ago: fetch_subtitles (retry)'."""
        ready_text = "?" if ready is None else str(ready)
        text = f"running {running}, ready {ready_text}"
        if self.last_failure is None:
            return text + "; no failures since start"
        name, outcome, when = self.last_failure
        ago = int(self.clock() - when)
        return text + f"; last failure {_short(ago)} ago: {name} ({outcome})"

    async def loop(self, engine: Engine, send: Callable[[str], object]) -> None:
        """Every STATUS_EVERY_S seconds send the line, unless the database is down (the engine's
        outage status stays up then)."""
        sent = ""
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            if not engine.db_healthy:
                sent = ""  # the outage line replaced ours: send again once it is over
                continue
            running = sum(len(d.active) for d in engine.dispatchers.values())
            try:
                ready = await store.ready_count(engine.pool)
            except DB_ERRORS:
                continue
            line = self.render(running, ready)
            if line != sent:  # an unchanged line is not sent again
                send(line)
                sent = line


def _short(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
