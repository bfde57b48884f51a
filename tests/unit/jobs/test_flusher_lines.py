"""The outcome flusher writes the waiting finish lines before it sends their outcomes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
import structlog

from addicted_jobs import logs
from addicted_jobs.jobs import flusher as flusher_module
from addicted_jobs.jobs.flusher import OutcomeFlusher
from addicted_jobs.jobs.store import Outcome


@pytest.fixture(autouse=True)
def _reset_logging() -> Any:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


def test_a_jobs_line_is_written_before_its_outcome_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Finish lines wait for the end of the loop's turn. A flush in the same turn (no interval)
    # must not send an outcome whose line still waits: a crash after the commit would lose the
    # line of a job that never runs again.
    out = io.StringIO()
    logs.configure("info", "json", out)
    writer = logs.LineWriter(structlog.get_logger("t"))
    seen_at_send: list[str] = []

    async def finish(pool: Any, batch: list[Outcome]) -> list[int]:
        seen_at_send.append(out.getvalue())
        return []

    monkeypatch.setattr(flusher_module.store, "finish", finish)

    async def turn() -> None:
        flusher = OutcomeFlusher(None, 0.0, lambda exc: None, lambda: None, lambda: None)  # type: ignore[arg-type]
        outcome = Outcome(id=7, claims=1, state="succeeded", outcome="succeeded", duration_s=0.0)
        flusher.record(outcome)
        writer("info", "job finished", {"id": 7})
        await flusher.flush()

    asyncio.run(turn())
    [sent] = seen_at_send
    assert json.loads(sent)["id"] == 7
