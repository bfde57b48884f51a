"""One dispatcher per queue: the claim loop (bounded concurrency, LISTEN/NOTIFY and due-time
wake-ups, per-type caps, a prefetch buffer for short jobs). It drives its jobs through a small
host Protocol, which the Engine satisfies; it never names the Engine, so the two modules do not
import each other.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from addicted_jobs.db import DB_ERRORS, UNREACHABLE
from addicted_jobs.jobs import store
from addicted_jobs.jobs.cluster import CAP_FULL_RETRY_S
from addicted_jobs.jobs.store import Claimed, Outcome

log = structlog.get_logger("addicted_jobs.jobs")


class DispatchHost(Protocol):
    """What a Dispatcher needs from the engine that owns it: the stop and claim gates, the
    per-type caps (counted across the engine's queues), the claim across a cluster, and where a
    claimed job goes to run and its outcome to be written."""

    @property
    def stopping(self) -> bool: ...

    @property
    def clustered(self) -> bool:
        """Claims and caps go through the cluster (no claim lower bounds, caps counted in the
        database, issue 19)."""
        ...

    @property
    def claiming_allowed(self) -> bool:
        """The instance lock is proven: no other daemon may be running this database's jobs."""
        ...

    def may_claim(self) -> bool: ...

    def cap_state(self, queue: str) -> tuple[list[str], dict[str, int]]:
        """The capped types of `queue` and each one's room now."""
        ...

    def room(self, name: str) -> int: ...

    async def claim(
        self,
        conn: asyncpg.Connection | PoolConnectionProxy,
        queue: str,
        limit: int,
        capped: list[str],
        rooms: dict[str, int],
    ) -> list[Claimed]:
        """A claim across the cluster on `conn` (used only when `clustered`)."""
        ...

    @property
    def node_id(self) -> int | None:
        """The cluster node whose claims mark the rows (None without clustering)."""
        ...

    def count_running(self, name: str, delta: int) -> None:
        """Claimed and not yet finished jobs of type `name` changed by `delta` (caps count them)."""
        ...

    def job_done(self, name: str) -> None:
        """A job of type `name` ended: a dispatcher waiting for room under its cap may claim."""
        ...

    async def execute(self, queue: str, job: Claimed) -> None: ...

    def record(self, outcome: Outcome) -> None: ...

    def known_ids(self) -> list[int]: ...

    def report_db_error(self, exc: BaseException) -> None: ...

    def report_db_ok(self) -> None: ...


class Dispatcher:
    """Claims work for one queue whenever it has room and something may be due.

    At most `concurrency` jobs run at once. When a queue's jobs are short (a few milliseconds), the
    round trip to claim them costs more than running them, so the dispatcher claims a batch ahead
    into a local buffer; long jobs are claimed only as slots free up, so none sits claimed but idle.
    A finishing job starts the next buffered one itself, and the buffer is refilled once half of
    it is gone, so the next claim's round trip overlaps with running jobs instead of idling them.
    """

    SHORT_JOB_MS = 20.0
    # Short jobs are claimed ahead by what the queue's slots run in this long at their measured
    # pace, up to claim_batch: while the pace holds, a job claimed ahead waits about this long
    # to start, and a queue of 1 ms jobs holds ~500 claimed (concurrency 10), not claim_batch;
    # once the jobs turn slow, what is held beyond the slots goes back (_trim_buffer). For
    # no-op jobs that is claim_batch: claims of up to 1,000 instead of 200 drained 20,000-23,000
    # jobs/s against 17,500 (PostgreSQL CPU per job 0.038 against 0.048 ms, bench A/B, issue 20).
    PREFETCH_WINDOW_MS = 50.0

    def __init__(
        self,
        host: DispatchHost,
        pool: asyncpg.Pool,
        queue: str,
        concurrency: int,
        types: Iterable[str],
        *,
        claim_batch: int,
        fallback_poll_s: float,
        claim_pool: asyncpg.Pool,
    ) -> None:
        """`pool` serves the claims across a cluster and the settling of a lost claim;
        `claim_pool` the claims and due-time reads without a cluster; `types` are
        the job types registered for `queue` (others are found by the periodic unbounded claim);
        `claim_batch` is the prefetch for short jobs; `fallback_poll_s` bounds every sleep (a
        lost notification costs at most this)."""
        self.host = host
        self.pool = pool
        self.claim_pool = claim_pool
        self.queue = queue
        self.claim_batch = claim_batch
        self.fallback_poll_s = fallback_poll_s
        self.concurrency = concurrency
        self.paused = False
        self.wake = asyncio.Event()
        self.active: dict[int, asyncio.Task[None]] = {}
        self.buffer: deque[Claimed] = deque()
        self.avg_ms: float | None = None  # moving average of job durations in this queue
        # Where each type's claim scan starts (issue 14, part 2; store._CLAIM_TAIL): a held
        # snapshot elsewhere leaves dead index entries at each type's head, which an unbounded
        # scan walks on every claim. rewind() drops them when a row may appear below them.
        self.lows: dict[str, store.Low] = {}
        self.types = set(types)
        self.rewinds = 0
        self.scanned_at = -math.inf  # monotonic time of the last unbounded claim
        self.lost_claim: int | None = None  # server pid of a claim that got no answer
        # Whether the loop waits for a running job to end before it may claim (no room, or the
        # prefetch buffer above its low water): only then does a job's end wake it. After a claim
        # that drained the queue, a wake per finished job cost an empty claim and a due-time read
        # each, 3 statements of a lone job's 5 (issue 20); new work wakes it by notification.
        self.room_bound = False

    def _prefetch(self) -> int:
        if self.avg_ms is None or self.avg_ms >= self.SHORT_JOB_MS:
            return 0
        ahead = self.concurrency * self.PREFETCH_WINDOW_MS / max(self.avg_ms, 0.001)
        return min(self.claim_batch, int(ahead))

    def _claim_limit(self) -> int:
        return self.concurrency + self._prefetch() - len(self.active) - len(self.buffer)

    def _low_water(self) -> int:
        """Claim again once the buffer holds fewer jobs than this."""
        return max(self.concurrency, self._prefetch() // 2)

    async def run(self) -> None:
        """The claim loop (a critical task): claim while there is room, start what was claimed,
        sleep until woken or a job falls due; on stop, hand back what never started."""
        outage = 0
        while not self.host.stopping:
            if self.paused:
                self.hand_back(self.buffer)
                await self._wait(None)
                continue
            self._start_buffered()
            if not self.host.may_claim():  # instance lock or cluster lease not proven
                await self._wait(0.5)
                continue
            limit = self._claim_limit()
            if limit <= 0 or len(self.buffer) >= self._low_water():
                self.room_bound = True
                await self._wait(None)  # a finishing job wakes us
                continue
            self.room_bound = False
            capped, rooms = self.host.cap_state(self.queue)
            self.wake.clear()
            # Unbounded now and then (every fallback_poll_s): it finds types no one registered
            # here and rows a lost notification did not announce, as the fallback poll does.
            full = time.monotonic() - self.scanned_at >= self.fallback_poll_s
            rewinds = self.rewinds
            try:
                claimed, lows = await self._claim(limit, capped, rooms, full)
            except DB_ERRORS as exc:
                outage += 1
                self.host.report_db_error(exc)
                await self._wait(min(0.25 * 2**outage, 5.0))
                continue
            if rewinds == self.rewinds:  # else a row it could not see may lie below these
                self.lows.update(lows)
                self.types.update(lows)
                if full:
                    self.scanned_at = time.monotonic()
            for job in claimed:
                self.host.count_running(job.name, 1)
            self.buffer.extend(claimed)
            if self.host.stopping:
                break
            self._start_buffered()
            if outage:
                outage = 0
                self.host.report_db_ok()
            if len(claimed) == limit:
                continue
            if claimed:
                # Let the jobs just started reach their handlers before the due-time read below
                # is built and sent: a lone job otherwise waits for it (issue 20).
                await asyncio.sleep(0)
            # Drained: sleep until woken, or until the next delayed job falls due.
            blocked = [n for n in capped if self.host.room(n) <= 0]
            try:
                if self.host.clustered:
                    due = await store.next_due(self.pool, self.queue, blocked)
                else:
                    due = await store.next_due(self.claim_pool, self.queue, blocked, self._lows())
            except DB_ERRORS as exc:
                self.host.report_db_error(exc)
                due = None
            timeout = self.fallback_poll_s
            if blocked and self.host.clustered:
                # Another node's finish frees a cap without waking us (issue 19).
                timeout = min(timeout, CAP_FULL_RETRY_S)
            if due is not None:
                timeout = min(timeout, max((due - datetime.now(UTC)).total_seconds(), 0.005))
            await self._wait(timeout)
        # Stopping: jobs claimed but not started go straight back, without spending an attempt.
        self.hand_back(self.buffer)

    async def _claim(
        self, limit: int, capped: list[str], rooms: dict[str, int], full: bool
    ) -> tuple[list[Claimed], dict[str, store.Low]]:
        """One claim on the engine's pool. A claim that failed without an answer from the server
        (a deadline, a dropped connection) may still have committed: its jobs would stay
        `running` with no one running them. So its session is ended first (whatever it ran is
        then final), and the queue's running jobs this daemon does not know go back to ready."""
        if self.lost_claim is not None:
            await self._settle_lost_claim(self.lost_claim)
        clustered = self.host.clustered
        async with (self.pool if clustered else self.claim_pool).acquire() as conn:
            pid = conn.get_server_pid()
            try:
                if not clustered:
                    return await store.claim_from(
                        conn, self.queue, limit, capped, rooms, None if full else self._lows()
                    )
                # Across nodes: caps counted in the database, no lower bounds (issue 19).
                return await self.host.claim(conn, self.queue, limit, capped, rooms), {}
            except UNREACHABLE:
                self.lost_claim = pid
                raise

    async def _settle_lost_claim(self, pid: int) -> None:
        if not self.host.may_claim():
            # Without the instance lock (or, in a cluster, this node's lease) another daemon may
            # be running those jobs.
            raise TimeoutError("a lost claim waits for the instance lock or lease to be proven")
        pool = self.pool
        if not await store.end_backend(pool, pid):
            raise TimeoutError(f"the session of a lost claim (pid {pid}) did not end")
        # Only this node's rows: another node's running jobs are unknown here too (issue 19).
        requeued = await store.requeue_unknown(
            pool, self.queue, self.host.known_ids(), self.host.node_id
        )
        self.lost_claim = None
        log.warning(
            "a claim got no answer; the jobs it may have claimed are ready again",
            queue=self.queue,
            requeued=requeued,
        )

    def _lows(self) -> dict[str, store.Low | None]:
        return {name: self.lows.get(name) for name in self.types}

    def rewind(self) -> None:
        """A row may have become due below the claim's lower bounds (an enqueue, a retry, a
        released continuation, a notification we may have missed): scan from the start again."""
        self.lows.clear()
        self.rewinds += 1
        self.wake.set()

    def hand_back(self, jobs: deque[Claimed]) -> None:
        """Put claimed, unstarted jobs back to ready without spending their attempt."""
        while jobs:
            job = jobs.popleft()
            self.host.count_running(job.name, -1)
            self.host.record(
                Outcome(
                    job.id, job.claims, "ready", datetime.now(UTC), refund=1, outcome="returned"
                )
            )

    async def _wait(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.wake.wait()
        except TimeoutError:
            pass
        self.wake.clear()

    def _start_buffered(self) -> None:
        """Start claimed jobs while there is room; not while paused or stopping, when the
        dispatcher loop hands the buffer back instead."""
        while (
            self.buffer
            and len(self.active) < self.concurrency
            and not self.paused
            and not self.host.stopping
        ):
            self._start(self.buffer.popleft())

    def _start(self, job: Claimed) -> None:
        task = asyncio.create_task(self.host.execute(self.queue, job), name=f"job-{job.id}")
        self.active[job.id] = task
        task.add_done_callback(partial(self._finished, job, time.monotonic()))

    def _finished(self, job: Claimed, started: float, _task: asyncio.Task[None]) -> None:
        self.active.pop(job.id, None)
        self.host.count_running(job.name, -1)
        elapsed = (time.monotonic() - started) * 1000
        self.avg_ms = elapsed if self.avg_ms is None else 0.8 * self.avg_ms + 0.2 * elapsed
        self.host.job_done(job.name)
        self._start_buffered()
        self._trim_buffer()
        if self.room_bound:
            self.wake.set()

    def _trim_buffer(self) -> None:
        """When the queue's jobs are no longer short (quick ones made it claim far ahead, then
        slow ones claimed with them finish), hand back what it holds beyond its slots, the
        newest first: else the slow jobs wait behind each other, held `running` (counted against
        their caps, out of other nodes' reach, recorded as crashed if the daemon dies). While
        the jobs stay short, a drifting pace never returns any; at most claim_batch jobs of
        under SHORT_JOB_MS each are then held, ~2 s of work at concurrency 10."""
        if self._prefetch() > 0 or len(self.buffer) <= self.concurrency:
            return
        keep = max(self.concurrency - len(self.active), 0)
        surplus: deque[Claimed] = deque()
        while len(self.buffer) > keep:
            surplus.appendleft(self.buffer.pop())
        self.hand_back(surplus)

    def take_buffered(self, job_id: int) -> Claimed | None:
        """Remove job `job_id` from the claimed-but-unstarted buffer (an operator's cancel);
        None when it is not there."""
        for job in self.buffer:
            if job.id == job_id:
                self.buffer.remove(job)
                self.host.count_running(job.name, -1)
                return job
        return None
