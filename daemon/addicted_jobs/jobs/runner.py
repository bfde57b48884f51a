"""The engine at run time: one dispatcher per queue (bounded concurrency, LISTEN/NOTIFY and due-time
wake-ups, per-type caps), job execution (locks, timeouts, retries), the batched status flusher,
crash recovery, pruning and the two-stage shutdown.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import structlog
from pydantic import BaseModel, ValidationError

from addicted_jobs.db import HEALTH_CHECK_TIMEOUT_S, UNREACHABLE, close_or_terminate
from addicted_jobs.jobs import store
from addicted_jobs.jobs.cluster import CAP_FULL_RETRY_S, Cluster
from addicted_jobs.jobs.context import JobContext
from addicted_jobs.jobs.locks import KeyedLocks
from addicted_jobs.jobs.loopguard import LoopGuard
from addicted_jobs.jobs.spec import JobSpec, Registry
from addicted_jobs.jobs.store import Claimed, EnqueueResult, NewJob, Outcome
from addicted_jobs.jobs.supervisor import Supervisor

log = structlog.get_logger("addicted_jobs.jobs")
CHANNEL = "addicted_jobs"
# The engine's loops also back off on any other database error rather than die: a vital task
# that dies takes the daemon with it, and a failing statement is logged each time it is retried.
DB_ERRORS = (*UNREACHABLE, asyncpg.PostgresError)
ERROR_TEXT_LIMIT = 4000
FLUSH_MAX = 5000


@dataclass(frozen=True)
class EngineConfig:
    concurrency: dict[str, int]
    default_concurrency: int = 10
    max_interruptions: int = 5
    fallback_poll_s: float = 5.0
    flush_interval_s: float = 0.002
    claim_batch: int = 200
    retry_delay_scale: float = 1.0
    retention_days: float = 7.0
    prune_every_s: float = 3600.0
    horizon_warn_s: float = 300.0  # an open transaction older than this is shown and logged
    horizon_check_s: float = 30.0


@dataclass(frozen=True)
class JobRequest:
    name: str
    args: dict[str, Any] | BaseModel
    after: int | None = None
    delay: float | None = None


def _error_text(exc: BaseException) -> str:
    summary = f"{type(exc).__name__}: {exc}"
    detail = "".join(traceback.format_exception(exc))
    return (summary + "\n" + detail)[:ERROR_TEXT_LIMIT]


class Dispatcher:
    """Claims work for one queue whenever it has room and something may be due.

    At most `concurrency` jobs run at once. When a queue's jobs are short (a few milliseconds), the
    round trip to claim them costs more than running them, so the dispatcher claims a batch ahead
    into a local buffer; long jobs are claimed only as slots free up, so none sits claimed but idle.
    A finishing job starts the next buffered one itself, and the buffer is refilled once half of
    it is gone, so the next claim's round trip overlaps with running jobs instead of idling them.
    """

    SHORT_JOB_MS = 20.0

    def __init__(self, engine: Engine, queue: str, concurrency: int) -> None:
        self.engine = engine
        self.queue = queue
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
        self.types = {n for n, s in engine.registry.specs.items() if s.queue == queue}
        self.rewinds = 0
        self.scanned_at = -math.inf  # monotonic time of the last unbounded claim
        self.lost_claim: int | None = None  # server pid of a claim that got no answer

    def _prefetch(self) -> int:
        short = self.avg_ms is not None and self.avg_ms < self.SHORT_JOB_MS
        return self.engine.config.claim_batch if short else 0

    def _claim_limit(self) -> int:
        return self.concurrency + self._prefetch() - len(self.active) - len(self.buffer)

    def _low_water(self) -> int:
        """Claim again once the buffer holds fewer jobs than this."""
        return max(self.concurrency, self._prefetch() // 2)

    async def run(self) -> None:
        outage = 0
        while not self.engine.stopping:
            if self.paused:
                self._hand_back(self.buffer)
                await self._wait(None)
                continue
            self._start_buffered()
            if not self.engine.may_claim():  # instance lock or cluster lease not proven
                await self._wait(0.5)
                continue
            limit = self._claim_limit()
            if limit <= 0 or len(self.buffer) >= self._low_water():
                await self._wait(None)  # a finishing job wakes us
                continue
            capped, rooms = self.engine.cap_state(self.queue)
            self.wake.clear()
            # Unbounded now and then (every fallback_poll_s): it finds types no one registered
            # here and rows a lost notification did not announce, as the fallback poll does.
            full = time.monotonic() - self.scanned_at >= self.engine.config.fallback_poll_s
            rewinds = self.rewinds
            try:
                claimed, lows = await self._claim(limit, capped, rooms, full)
            except DB_ERRORS as exc:
                outage += 1
                self.engine.report_db_error(exc)
                await self._wait(min(0.25 * 2**outage, 5.0))
                continue
            if rewinds == self.rewinds:  # else a row it could not see may lie below these
                self.lows.update(lows)
                self.types.update(lows)
                if full:
                    self.scanned_at = time.monotonic()
            for job in claimed:
                self.engine.running_by_name[job.name] += 1
            self.buffer.extend(claimed)
            if self.engine.stopping:
                break
            self._start_buffered()
            if outage:
                outage = 0
                self.engine.report_db_ok()
            if len(claimed) == limit:
                continue
            # Drained: sleep until woken, or until the next delayed job falls due.
            blocked = [n for n in capped if self.engine.room(n) <= 0]
            try:
                bounds = self._lows() if self.engine.cluster is None else None
                due = await store.next_due(self.engine.engine_pool, self.queue, blocked, bounds)
            except DB_ERRORS as exc:
                self.engine.report_db_error(exc)
                due = None
            timeout = self.engine.config.fallback_poll_s
            if blocked and self.engine.cluster is not None:
                # Another node's finish frees a cap without waking us (issue 19).
                timeout = min(timeout, CAP_FULL_RETRY_S)
            if due is not None:
                timeout = min(timeout, max((due - datetime.now(UTC)).total_seconds(), 0.005))
            await self._wait(timeout)
        # Stopping: jobs claimed but not started go straight back, without spending an attempt.
        self._hand_back(self.buffer)

    async def _claim(
        self, limit: int, capped: list[str], rooms: dict[str, int], full: bool
    ) -> tuple[list[Claimed], dict[str, store.Low]]:
        """One claim on the engine's pool. A claim that failed without an answer from the server
        (a deadline, a dropped connection) may still have committed: its jobs would stay
        `running` with no one running them. So its session is ended first (whatever it ran is
        then final), and the queue's running jobs this daemon does not know go back to ready."""
        if self.lost_claim is not None:
            await self._settle_lost_claim(self.lost_claim)
        async with self.engine.engine_pool.acquire() as conn:
            pid = conn.get_server_pid()
            try:
                if self.engine.cluster is None:
                    return await store.claim_from(
                        conn, self.queue, limit, capped, rooms, None if full else self._lows()
                    )
                # Across nodes: caps counted in the database, no lower bounds (issue 19).
                claimed = await self.engine.cluster.claim(
                    conn, self.queue, limit, capped, rooms, self.engine.caps
                )
                return claimed, {}
            except UNREACHABLE:
                self.lost_claim = pid
                raise

    async def _settle_lost_claim(self, pid: int) -> None:
        if not self.engine.may_claim():
            # Without the instance lock (or, in a cluster, this node's lease) another daemon may
            # be running those jobs.
            raise TimeoutError("a lost claim waits for the instance lock or lease to be proven")
        pool = self.engine.engine_pool
        if not await store.end_backend(pool, pid):
            raise TimeoutError(f"the session of a lost claim (pid {pid}) did not end")
        node = None if self.engine.cluster is None else self.engine.cluster.node_id
        requeued = await store.requeue_unknown(pool, self.queue, self.engine.known_ids(), node)
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

    def _hand_back(self, jobs: deque[Claimed]) -> None:
        while jobs:
            job = jobs.popleft()
            self.engine.running_by_name[job.name] -= 1
            self.engine.record(
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
            and not self.engine.stopping
        ):
            self._start(self.buffer.popleft())

    def _start(self, job: Claimed) -> None:
        task = asyncio.create_task(self.engine.execute(self.queue, job), name=f"job-{job.id}")
        self.active[job.id] = task
        task.add_done_callback(partial(self._finished, job, time.monotonic()))

    def _finished(self, job: Claimed, started: float, _task: asyncio.Task[None]) -> None:
        self.active.pop(job.id, None)
        self.engine.running_by_name[job.name] -= 1
        elapsed = (time.monotonic() - started) * 1000
        self.avg_ms = elapsed if self.avg_ms is None else 0.8 * self.avg_ms + 0.2 * elapsed
        self.engine.wake_capped(job.name)
        self._start_buffered()
        self.wake.set()

    def take_buffered(self, job_id: int) -> Claimed | None:
        for job in self.buffer:
            if job.id == job_id:
                self.buffer.remove(job)
                self.engine.running_by_name[job.name] -= 1
                return job
        return None


class Engine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: Registry,
        config: EngineConfig,
        connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
        supervisor: Supervisor | None = None,
        engine_pool: asyncpg.Pool | None = None,
    ) -> None:
        """`pool` serves enqueues and the read side (socket requests, jobs); `engine_pool`, when
        given, is the engine's own for claims, status writes, recovery and pruning, so requests
        and jobs holding every connection of `pool` never stall the queues (issue 14)."""
        self.pool = pool
        self.engine_pool = engine_pool or pool
        self.registry = registry
        self.config = config
        self.locks = KeyedLocks()
        self.cluster: Cluster | None = None  # [cluster] enabled: set before start() (app.py)
        self.supervisor = supervisor or Supervisor()
        self.running_by_name: Counter[str] = Counter()
        self.dispatchers: dict[str, Dispatcher] = {}
        self.stopping = False
        self.started = False
        self.claiming_allowed = True
        self.db_healthy = True
        self.on_db_state: Callable[[bool, str], None] | None = None
        self.on_finished: Callable[[str, str, str, float], None] = lambda *_: (
            None
        )  # name, queue, outcome, s
        self._connect = connect
        self._listener: asyncpg.Connection | None = None
        self._outcomes: list[Outcome] = []
        self._held: list[Outcome] = []  # outcomes whose row another session holds locked
        self._flushing: list[Outcome] = []  # the batch a flush is writing now
        self._held_logged: set[int] = set()
        self._flush_wanted = asyncio.Event()
        self._loops: list[asyncio.Task[Any]] = []
        self._dispatch_loops: list[asyncio.Task[Any]] = []
        self._hurry = asyncio.Event()
        self._cancel_reasons: dict[int, str] = {}
        self._caps: dict[str, int] = {s.name: s.cap for s in registry.specs.values() if s.cap}
        self.guard = LoopGuard()
        # The oldest transaction holding back vacuum, while older than horizon_warn_s (ping, top).
        self.horizon: dict[str, Any] | None = None
        self._horizon_warned: tuple[Any, ...] | None = None
        self.refresh_logger()

    def refresh_logger(self) -> None:
        """A concrete logger for the per-job lines: the lazy proxy re-binds on every call, a cost
        paid twice per job. Call again after the log level changes (reload)."""
        self.job_log: Any = log.bind()

    # ---- enqueue ------------------------------------------------------------------------------

    def _new_job(self, request: JobRequest) -> tuple[JobSpec[Any], NewJob]:
        spec = self.registry.get(request.name)
        model = spec.parse(request.args)
        if request.delay is not None and request.delay < 0:
            raise ValueError(f"delay must be zero or positive seconds, got {request.delay}")
        return spec, NewJob(
            name=spec.name,
            queue=spec.queue,
            args=model.model_dump(mode="json"),
            max_attempts=spec.retry.max_attempts,
            delay=request.delay,
            after=request.after,
            unique_key=spec.key_for(model),
            unique_ttl=spec.unique_ttl,
        )

    async def enqueue(
        self,
        name: str,
        args: dict[str, Any] | BaseModel | None = None,
        *,
        after: int | None = None,
        delay: float | None = None,
    ) -> EnqueueResult:
        """Validate and store one job (UnknownJob, ValidationError, ParentNotFound on bad input)."""
        [result] = await self.enqueue_many([JobRequest(name, args or {}, after, delay)])
        return result

    async def enqueue_many(self, requests: Sequence[JobRequest]) -> list[EnqueueResult]:
        """All requests are validated before anything is written; one statement stores them all."""
        prepared = [self._new_job(r) for r in requests]
        results = await store.enqueue(self.pool, [job for _, job in prepared])
        for (_, job), result in zip(prepared, results, strict=True):
            # A scheduled job wakes its dispatcher too, so it sets its timer to the new due time.
            if result.created and result.state in ("ready", "scheduled"):
                self.rewind(job.queue)
        return results

    def wake(self, queue: str) -> None:
        dispatcher = self.dispatchers.get(queue)
        if dispatcher is not None:
            dispatcher.wake.set()

    def rewind(self, queue: str | None = None) -> None:
        """Drop the claim's lower bounds of `queue` (every queue: None) and wake it."""
        for name, dispatcher in self.dispatchers.items():
            if queue is None or name == queue:
                dispatcher.rewind()

    def known_ids(self) -> list[int]:
        """Every job this engine has claimed and not yet written the outcome of."""
        ids = [o.id for o in (*self._outcomes, *self._held, *self._flushing)]
        for dispatcher in self.dispatchers.values():
            ids.extend(dispatcher.active)
            ids.extend(job.id for job in dispatcher.buffer)
        return ids

    def wake_capped(self, name: str) -> None:
        if name in self._caps:
            self.wake(self.registry.get(name).queue)

    def cap_state(self, queue: str) -> tuple[list[str], dict[str, int]]:
        capped = [n for n, cap in self._caps.items() if self.registry.specs[n].queue == queue]
        return capped, {n: self.room(n) for n in capped}

    # ---- cluster hooks (issue 19; the logic is in daemon/jobs/cluster.py) ----------------------

    def may_claim(self) -> bool:
        return self.claiming_allowed and (self.cluster is None or self.cluster.may_claim())

    @property
    def caps(self) -> dict[str, int]:
        """Capped type -> its cap (jobs running at once, per node or across the cluster)."""
        return self._caps

    async def sync_paused(self) -> None:
        """Follow pause/resume done through another node (read with each heartbeat)."""
        paused = await store.paused_queues(self.engine_pool)
        for queue, dispatcher in self.dispatchers.items():
            if dispatcher.paused != (queue in paused):
                dispatcher.paused = queue in paused
                dispatcher.wake.set()

    def abandon_running(self) -> None:
        """This node was declared dead: its running and buffered jobs were put back to ready and
        may run elsewhere, so they stop here; their outcomes are refused by the fencing token."""
        for dispatcher in self.dispatchers.values():
            dispatcher._hand_back(dispatcher.buffer)
            for task in dispatcher.active.values():
                task.cancel()

    def room(self, name: str) -> int:
        """How many more jobs of a capped type may be claimed now (claimed ones count)."""
        if self.cluster is not None and self.cluster.cap_full(name):
            return 0  # at its cap across the cluster a moment ago (issue 19)
        return self._caps[name] - self.running_by_name[name]

    # ---- lifecycle ----------------------------------------------------------------------------

    def queues(self) -> list[str]:
        return sorted(self.registry.queues() | set(self.config.concurrency))

    async def recover(self) -> store.Recovered:
        recovered = await store.recover(self.engine_pool, self.config.max_interruptions)
        if recovered.requeued or recovered.poisoned:
            log.warning(
                "recovered jobs left running by a previous daemon",
                requeued=len(recovered.requeued),
                poisoned=recovered.poisoned,
            )
        return recovered

    async def start(self) -> None:
        paused = await store.paused_queues(self.engine_pool)
        for queue in self.queues():
            conc = self.config.concurrency.get(queue, self.config.default_concurrency)
            dispatcher = self.dispatchers[queue] = Dispatcher(self, queue, conc)
            dispatcher.paused = queue in paused
        if self._connect is not None:
            await self._listen()
            self._loops.append(
                self.supervisor.spawn(self._keep_listening(), "engine-listener", critical=True)
            )
        for queue, dispatcher in self.dispatchers.items():
            self._loops.append(
                self.supervisor.spawn(dispatcher.run(), f"dispatch-{queue}", critical=True)
            )
        self._loops.append(
            self.supervisor.spawn(self._flush_loop(), "engine-flusher", critical=True)
        )
        self._loops.append(self.supervisor.spawn(self._prune_loop(), "engine-pruner"))
        self._loops.append(self.supervisor.spawn(self._horizon_loop(), "engine-horizon"))
        self._loops.append(self.supervisor.spawn(self._fold_loop(), "engine-counts"))
        self.guard.start()
        self.started = True

    async def _listen(self) -> None:
        assert self._connect is not None
        conn = await self._connect()
        await conn.add_listener(CHANNEL, self._on_notify)
        self._listener = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.rewind(str(payload))

    async def _keep_listening(self, every: float = 2.0) -> None:
        """Keep LISTEN alive: a closed connection is reconnected, and one that does not answer
        SELECT 1 within HEALTH_CHECK_TIMEOUT_S (half-open: the server side is gone, the client
        side silent) is replaced. Everyone is woken after, since notifications were lost."""
        while not self.stopping:
            await asyncio.sleep(every)
            conn = self._listener
            if conn is not None and not conn.is_closed():
                try:
                    await conn.fetchval("SELECT 1", timeout=HEALTH_CHECK_TIMEOUT_S)
                    continue
                except (TimeoutError, *DB_ERRORS) as exc:
                    log.warning(
                        "the LISTEN connection did not answer; replacing it",
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    conn.terminate()
                    self._listener = None
            try:
                await self._listen()
                self.rewind()  # what was enqueued meanwhile may lie below the claims' bounds
                log.info("listening for job notifications again")
            except DB_ERRORS as exc:
                self.report_db_error(exc)

    def report_db_error(self, exc: BaseException) -> None:
        if self.db_healthy:
            self.db_healthy = False
            log.error(
                "database unavailable; jobs wait until it is back",
                error=f"{type(exc).__name__}: {exc}",
            )
            if self.on_db_state:
                self.on_db_state(False, str(exc))

    def report_db_ok(self) -> None:
        if not self.db_healthy:
            self.db_healthy = True
            log.info("database reachable again")
            if self.on_db_state:
                self.on_db_state(True, "")

    def set_concurrency(self, queue: str, concurrency: int) -> None:
        dispatcher = self.dispatchers.get(queue)
        if dispatcher is not None and dispatcher.concurrency != concurrency:
            log.info(
                "queue concurrency changed",
                queue=queue,
                old=dispatcher.concurrency,
                new=concurrency,
            )
            dispatcher.concurrency = concurrency
            dispatcher.wake.set()

    async def set_paused(self, queue: str, paused: bool) -> None:
        await store.set_paused(self.pool, queue, paused)
        dispatcher = self.dispatchers.get(queue)
        if dispatcher is not None:
            dispatcher.paused = paused
            dispatcher.wake.set()

    def hurry(self) -> None:
        """A second signal: skip what is left of the grace period."""
        self._hurry.set()

    async def stop(self, grace: float) -> None:
        """Stop claiming, let running jobs finish within `grace`, then put the rest back to ready."""
        self.stopping = True
        for dispatcher in self.dispatchers.values():
            dispatcher.wake.set()
        # Let each dispatcher finish a claim in flight, so no claimed job is left behind as running.
        if self._dispatch_loops:
            await asyncio.wait(self._dispatch_loops, timeout=10.0)
            for task in self._dispatch_loops:
                task.cancel()
        active = [t for d in self.dispatchers.values() for t in d.active.values()]
        if active:
            log.info("waiting for running jobs", running=len(active), grace_s=grace)
            all_done = asyncio.ensure_future(asyncio.wait(active))
            hurry = asyncio.ensure_future(self._hurry.wait())
            await asyncio.wait(
                [all_done, hurry], timeout=grace, return_when=asyncio.FIRST_COMPLETED
            )
            all_done.cancel()
            hurry.cancel()
            left = [t for t in active if not t.done()]
            if left:
                log.warning("grace period over; putting running jobs back", jobs=len(left))
                for task in left:
                    task.cancel()
                await asyncio.wait(left, timeout=5.0)
        for task in self._loops:
            task.cancel()
        await asyncio.wait(self._loops, timeout=5.0) if self._loops else None
        self.guard.stop()
        await asyncio.shield(self._final_flush())
        if self._listener is not None and not self._listener.is_closed():
            await close_or_terminate(self._listener)

    # ---- running a job ------------------------------------------------------------------------

    async def execute(self, queue: str, job: Claimed) -> None:
        started = time.monotonic()
        structlog.contextvars.bind_contextvars(
            job_id=job.id, job=job.name, queue=queue, attempt=job.attempt
        )
        outcome, result, error = "succeeded", Outcome(job.id, job.claims, "succeeded"), None
        try:
            try:
                spec = self.registry.get(job.name)
                args = spec.parse(job.args)
            except (LookupError, ValidationError) as exc:
                # No handler, or stored arguments that can never fit: retrying cannot help.
                raise _Unrunnable(exc) from exc
            ctx = JobContext(
                job.id, job.name, queue, job.attempt, job.max_attempts, self, self.job_log
            )
            if spec.lock_key is None:
                await self._call(spec, ctx, args)
            elif spec.lock_mode == "try":
                async with self.locks.try_lock(f"{spec.name}:{spec.lock_key(args)}") as got:
                    if got:
                        await self._call(spec, ctx, args)
                    else:
                        outcome = "skipped"
            else:
                async with self.locks.lock(f"{spec.name}:{spec.lock_key(args)}"):
                    await self._call(spec, ctx, args)
        except asyncio.CancelledError:
            if self._cancel_reasons.pop(job.id, None) == "operator":
                outcome, result = (
                    "cancelled",
                    Outcome(job.id, job.claims, "deleted", error="cancelled by an operator"),
                )
            else:
                outcome, result = (
                    "interrupted",
                    Outcome(job.id, job.claims, "ready", datetime.now(UTC), refund=1),
                )
        except _Unrunnable as exc:
            error = f"{type(exc.cause).__name__}: {exc.cause}"[:500]
            outcome, result = (
                "failed",
                Outcome(job.id, job.claims, "failed", error=_error_text(exc.cause)),
            )
        except Exception as exc:
            outcome, result, error = self._failure(job, exc)
        finally:
            elapsed = time.monotonic() - started
            self.record(replace(result, outcome=outcome, duration_s=elapsed))
            self.on_finished(job.name, queue, outcome, elapsed)
            fields: dict[str, Any] = {
                "id": job.id,
                "name": job.name,
                "queue": queue,
                "attempt": job.attempt,
                "duration_ms": round((time.monotonic() - started) * 1000, 2),
                "outcome": outcome,
            }
            if error:
                fields["error"] = error
            if result.state == "scheduled" and result.run_at is not None:
                fields["retry_in_s"] = round((result.run_at - datetime.now(UTC)).total_seconds(), 1)
            structlog.contextvars.clear_contextvars()
            if outcome in ("succeeded", "skipped", "interrupted", "cancelled"):
                self.job_log.info("job finished", **fields)
            elif outcome == "retry":
                self.job_log.warning("job finished", **fields)
            else:  # failed or deleted for good: someone has to look (journalctl -p err)
                self.job_log.error("job finished", **fields)

    async def _call(self, spec: JobSpec[Any], ctx: JobContext, args: BaseModel) -> None:
        if spec.timeout is None:
            await spec.handler(ctx, args)
            return
        task = asyncio.current_task()
        if task is not None:
            self.guard.watch(task, spec.timeout)
        try:
            async with asyncio.timeout(spec.timeout):
                await spec.handler(ctx, args)
        except TimeoutError as exc:
            raise JobTimeout(f"timed out after {spec.timeout:g} s") from exc
        finally:
            if task is not None:
                self.guard.forget(task)

    def _failure(self, job: Claimed, exc: BaseException) -> tuple[str, Outcome, str]:
        summary = f"{type(exc).__name__}: {exc}"[:500]
        spec = self.registry.specs.get(job.name)
        policy = spec.retry if spec else None
        if policy is not None and job.attempt < job.max_attempts:
            delay = policy.delay(job.attempt) * self.config.retry_delay_scale
            state = "scheduled" if delay > 0 else "ready"
            run_at = datetime.now(UTC) + timedelta(seconds=delay)
            return "retry", Outcome(job.id, job.claims, state, run_at, _error_text(exc)), summary
        final = "deleted" if policy is not None and policy.on_exhausted == "delete" else "failed"
        return final, Outcome(job.id, job.claims, final, error=_error_text(exc)), summary

    def cancel_running(self, job_id: int) -> bool:
        for dispatcher in self.dispatchers.values():
            job = dispatcher.take_buffered(job_id)
            if job is not None:
                self.record(
                    Outcome(
                        job_id,
                        job.claims,
                        "deleted",
                        error="cancelled by an operator",
                        outcome="cancelled",
                    )
                )
                return True
            task = dispatcher.active.get(job_id)
            if task is not None:
                self._cancel_reasons[job_id] = "operator"
                task.cancel()
                return True
        return False

    # ---- status writes ------------------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        # Synchronous on purpose: no await between the job's end and its outcome being queued, so
        # a cancellation cannot lose it. The flusher writes it within a few milliseconds.
        self._outcomes.append(outcome)
        self._flush_wanted.set()

    async def flush(self) -> None:
        """Write every recorded outcome; keeps them for the next try when the database is away.

        Outcomes whose row another session holds locked are not waited for: they wait in
        `_held` and go out again with the next flush (at least every HELD_RETRY_S), so one locked
        row never holds up the others' status, unique keys and continuations."""
        if self._held:
            self._outcomes = self._held + self._outcomes
            self._held = []
        while self._outcomes:
            # At most FLUSH_MAX outcomes per call: a flush that fell behind catches up in calls
            # of bounded cost rather than one that grows with the lag.
            batch, self._outcomes = self._outcomes[:FLUSH_MAX], self._outcomes[FLUSH_MAX:]
            self._flushing = batch
            try:
                # A finish that timed out may have committed: written again, its outcomes are
                # dropped (the row is no longer that run's: the fencing token, 007).
                busy = await store.finish(self.engine_pool, batch)
            except DB_ERRORS:
                self._outcomes = batch + self._outcomes
                raise
            finally:
                self._flushing = []
            if busy:
                self._hold([o for o in batch if o.id in set(busy)])
            for outcome in batch:
                if outcome.id in self._held_logged and outcome.id not in busy:
                    self._held_logged.discard(outcome.id)
                    log.info("held job outcome written", id=outcome.id, state=outcome.state)
            # A retry scheduled sooner than the fallback poll must wake its dispatcher too: it is
            # asleep until a due time computed before this job failed.
            if any(o.state in ("ready", "scheduled") for o in batch) and not self.stopping:
                self.rewind()  # a retry may fall due below a claim's lower bound

    HELD_RETRY_S = 0.5

    def _hold(self, outcomes: list[Outcome]) -> None:
        self._held.extend(outcomes)
        for outcome in outcomes:
            if outcome.id not in self._held_logged:
                self._held_logged.add(outcome.id)
                log.warning(
                    "job row locked by another session; its outcome is written when the lock ends",
                    id=outcome.id,
                    state=outcome.state,
                )

    async def _flush_loop(self) -> None:
        failures = 0
        while True:
            try:
                async with asyncio.timeout(self.HELD_RETRY_S if self._held else None):
                    await self._flush_wanted.wait()
            except TimeoutError:
                pass
            self._flush_wanted.clear()
            if self.config.flush_interval_s:
                await asyncio.sleep(self.config.flush_interval_s)  # gather a batch, not a sync wait
            try:
                await asyncio.shield(self.flush())
                if failures:
                    failures = 0
                    self.report_db_ok()
            except DB_ERRORS as exc:
                failures += 1
                self.report_db_error(exc)
                await asyncio.sleep(min(0.25 * 2**failures, 5.0))
                self._flush_wanted.set()

    async def _final_flush(self, deadline_s: float = 10.0) -> None:
        """At stop: write everything, giving rows held locked by others up to `deadline_s`. What
        is still held stays `running` and is recovered (without spending its attempt) at the next
        start."""
        end = time.monotonic() + deadline_s
        await self.flush()
        while self._held and time.monotonic() < end:
            await asyncio.sleep(min(self.HELD_RETRY_S, max(end - time.monotonic(), 0)))
            await self.flush()
        if self._held:
            log.error(
                "job outcomes not written: their rows stay locked by another session; "
                "they are recovered at the next start",
                ids=[o.id for o in self._held],
            )

    async def _horizon_loop(self) -> None:
        """Watch for a transaction elsewhere that holds back the xmin horizon: claims slow down
        while it is open (dead rows pile up), so it is logged once and shown by ping and top."""
        while True:
            try:
                holder = await store.horizon_holder(self.engine_pool)
            except DB_ERRORS as exc:
                log.debug("horizon check skipped", error=str(exc))
                holder = None
            if holder is not None and holder["age_s"] > self.config.horizon_warn_s:
                holder["age_s"] = round(holder["age_s"], 1)
                self.horizon = holder
                key = (holder["pid"], holder["application_name"])
                if key != self._horizon_warned:
                    self._horizon_warned = key
                    log.warning(
                        "an open transaction holds back vacuum of the jobs table; claims slow down "
                        "until it ends (set idle_in_transaction_session_timeout)",
                        **{f"holder_{k}": v for k, v in holder.items()},
                    )
            else:
                self.horizon = None
                self._horizon_warned = None
            await asyncio.sleep(self.config.horizon_check_s)

    COUNTS_FOLD_S = 2.0

    async def _fold_loop(self) -> None:
        """Fold the job counters' deltas every COUNTS_FOLD_S (issue 17): reads of the counts
        (stats, queues, ping, top every second) then sum a few hundred rows at most."""
        while True:
            try:
                await store.fold_counts(self.engine_pool)
            except DB_ERRORS as exc:
                log.debug("counter fold skipped", error=str(exc))
            await asyncio.sleep(self.COUNTS_FOLD_S)

    async def _prune_loop(self) -> None:
        while True:
            try:
                removed = await store.prune(self.engine_pool, self.config.retention_days)
                if removed:
                    log.info(
                        "pruned finished jobs",
                        removed=removed,
                        retention_days=self.config.retention_days,
                    )
            except DB_ERRORS as exc:
                log.warning("pruning skipped", error=str(exc))
            await asyncio.sleep(self.config.prune_every_s)


class JobTimeout(Exception):
    pass


class _Unrunnable(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
