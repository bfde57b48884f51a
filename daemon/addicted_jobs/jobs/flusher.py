"""The outcome flusher: every job's end is recorded synchronously and written in batches.

`record` never awaits, so no cancellation can come between a job's end and its outcome being
queued; `run` wakes on a record, waits `interval_s` to gather a batch, and writes it with one
`store.finish` under `asyncio.shield`, so a stop never cuts a batch in half.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import asyncpg
import structlog

from addicted_jobs.db import DB_ERRORS
from addicted_jobs.jobs import store
from addicted_jobs.jobs.states import WAITING
from addicted_jobs.jobs.store import Outcome
from addicted_jobs.logs import write_waiting_lines

log = structlog.get_logger("addicted_jobs.jobs")
FLUSH_MAX = 5000


class OutcomeFlusher:
    """Batches recorded outcomes into `store.finish` on `pool`.

    Outcomes whose row another session holds locked are not waited for: they wait in `held` and
    go out again with the next flush (at least every HELD_RETRY_S), so one locked row never holds
    up the others. `on_db_error(exc)` / `on_db_ok()` report an outage and its end;
    `on_requeued()` runs after a batch put a job back to ready or scheduled (its dispatcher may be
    asleep until a due time computed before)."""

    HELD_RETRY_S = 0.5

    def __init__(
        self,
        pool: asyncpg.Pool,
        interval_s: float,
        on_db_error: Callable[[BaseException], None],
        on_db_ok: Callable[[], None],
        on_requeued: Callable[[], None],
    ) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.on_db_error = on_db_error
        self.on_db_ok = on_db_ok
        self.on_requeued = on_requeued
        self.outcomes: list[Outcome] = []
        self.held: list[Outcome] = []  # outcomes whose row another session holds locked
        self.flushing: list[Outcome] = []  # the batch a flush is writing now
        self._held_logged: set[int] = set()
        self._wanted = asyncio.Event()

    def record(self, outcome: Outcome) -> None:
        # Synchronous on purpose: no await between the job's end and its outcome being queued, so
        # a cancellation cannot lose it. The flusher writes it within a few milliseconds.
        """Queue one outcome; the loop writes it within interval_s."""
        self.outcomes.append(outcome)
        self._wanted.set()

    def pending_ids(self) -> Iterator[int]:
        """Ids of the jobs whose outcome is recorded but not yet written."""
        for outcome in (*self.outcomes, *self.held, *self.flushing):
            yield outcome.id

    async def flush(self) -> None:
        """Write every recorded outcome; keeps them for the next try when the database is away
        (then raises the database error)."""
        if self.held:
            self.outcomes = self.held + self.outcomes
            self.held = []
        while self.outcomes:
            # At most FLUSH_MAX outcomes per call: a flush that fell behind catches up in calls
            # of bounded cost rather than one that grows with the lag.
            batch, self.outcomes = self.outcomes[:FLUSH_MAX], self.outcomes[FLUSH_MAX:]
            self.flushing = batch
            # The lines of these jobs first: a crash after the commit must not lose a line whose
            # job will not run again (the lines wait for the end of a loop turn, logs.SafeStream).
            write_waiting_lines()
            try:
                # A finish that timed out may have committed: written again, its outcomes are
                # dropped (the row is no longer that run's: the fencing token, 007).
                busy = await store.finish(self.pool, batch)
            except DB_ERRORS:
                self.outcomes = batch + self.outcomes
                raise
            finally:
                self.flushing = []
            if busy:
                self._hold([o for o in batch if o.id in set(busy)])
            for outcome in batch:
                if outcome.id in self._held_logged and outcome.id not in busy:
                    self._held_logged.discard(outcome.id)
                    log.info("held job outcome written", id=outcome.id, state=outcome.state)
            # A retry scheduled sooner than the fallback poll must wake its dispatcher too.
            if any(o.state in WAITING for o in batch):
                self.on_requeued()

    def _hold(self, outcomes: list[Outcome]) -> None:
        self.held.extend(outcomes)
        for outcome in outcomes:
            if outcome.id not in self._held_logged:
                self._held_logged.add(outcome.id)
                log.warning(
                    "job row locked by another session; its outcome is written when the lock ends",
                    id=outcome.id,
                    state=outcome.state,
                )

    async def run(self) -> None:
        """The flusher loop (a critical task): never returns, backs off while the database is
        away and keeps what it could not write."""
        failures = 0
        while True:
            try:
                async with asyncio.timeout(self.HELD_RETRY_S if self.held else None):
                    await self._wanted.wait()
            except TimeoutError:
                pass
            self._wanted.clear()
            if self.interval_s:
                await asyncio.sleep(self.interval_s)  # gather a batch, not a sync wait
            try:
                await asyncio.shield(self.flush())
                if failures:
                    failures = 0
                    self.on_db_ok()
            except DB_ERRORS as exc:
                failures += 1
                self.on_db_error(exc)
                await asyncio.sleep(min(0.25 * 2**failures, 5.0))
                self._wanted.set()

    async def final_flush(self, deadline_s: float = 10.0) -> None:
        """At stop: write everything, giving rows held locked by others up to `deadline_s`. What
        is still held stays `running` and is recovered (without spending its attempt) at the next
        start."""
        end = time.monotonic() + deadline_s
        await self.flush()
        while self.held and time.monotonic() < end:
            await asyncio.sleep(min(self.HELD_RETRY_S, max(end - time.monotonic(), 0)))
            await self.flush()
        if self.held:
            log.error(
                "job outcomes not written: their rows stay locked by another session; "
                "they are recovered at the next start",
                ids=[o.id for o in self.held],
            )
