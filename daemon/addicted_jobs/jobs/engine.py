"""The engine at run time: enqueue, the lifecycle (start, LISTEN, recovery, pruning and the
two-stage shutdown), per-type caps, and running one job (locks, timeouts, the failure policy of
jobs/outcomes.py). The claim loops are jobs/dispatcher.py's, the status writes jobs/flusher.py's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel, ValidationError

from addicted_jobs.db import DB_ERRORS, HEALTH_CHECK_TIMEOUT_S, close_or_terminate
from addicted_jobs.jobs import store
from addicted_jobs.jobs.cluster import Cluster
from addicted_jobs.jobs.context import EnqueueResult, JobContext, JobRequest
from addicted_jobs.jobs.dispatcher import Dispatcher
from addicted_jobs.jobs.flusher import OutcomeFlusher
from addicted_jobs.jobs.locks import KeyedLocks
from addicted_jobs.jobs.loopguard import LoopGuard
from addicted_jobs.jobs.outcomes import JobTimeout, Unrunnable, outcome_of
from addicted_jobs.jobs.spec import JobSpec, Registry
from addicted_jobs.jobs.states import WAITING
from addicted_jobs.jobs.store import Claimed, NewJob, Outcome
from addicted_jobs.jobs.supervisor import Supervisor
from addicted_jobs.logs import JOB_CONTEXT, LineWriter

if TYPE_CHECKING:
    from addicted_jobs.settings import Settings

log = structlog.get_logger("addicted_jobs.jobs")
CHANNEL = "addicted_jobs"


@dataclass(frozen=True)
class EngineConfig:
    """The engine's knobs: per-queue concurrency (others get default_concurrency), how often an
    interrupted job may be recovered before it is failed, the fallback poll and flush interval,
    the claim prefetch for short jobs, a scale on retry delays (tests), retention of finished
    jobs, and the horizon watch. Seconds unless the name says otherwise."""

    concurrency: dict[str, int]
    default_concurrency: int = 10
    max_interruptions: int = 5
    fallback_poll_s: float = 5.0
    flush_interval_s: float = 0.002
    claim_batch: int = 1000
    retry_delay_scale: float = 1.0
    retention_days: float = 7.0
    prune_every_s: float = 3600.0
    horizon_warn_s: float = 300.0  # an open transaction older than this is shown and logged
    horizon_check_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The config of the daemon's settings: `[queues]` concurrency, and every field here that
        `[engine]` has under the same name, so a new knob is one field here and one there.
        Only the flush interval is given in milliseconds there."""
        section = settings.engine
        same = {f.name for f in fields(cls)} & set(type(section).model_fields)
        return cls(
            concurrency={name: q.concurrency for name, q in settings.queues.items()},
            default_concurrency=settings.queue_concurrency("default"),
            flush_interval_s=section.flush_interval_ms / 1000,
            **{name: getattr(section, name) for name in same},
        )


class Engine:
    """The job engine of one daemon: `enqueue`/`enqueue_many` (the Enqueuer every JobContext
    holds), `start` (a Dispatcher per queue, the LISTEN connection, the flusher, pruner, horizon
    watch and counter fold, all under the Supervisor), `execute` (one run: lock, timeout, loop
    guard, the verdict of outcomes.outcome_of recorded synchronously), and `stop` (stop claiming,
    grace for running jobs, then hand them back without spending their attempt).

    It is the Dispatchers' DispatchHost: it counts claimed jobs per type for the caps, and owns
    the cluster hooks (issue 19) and the database health reported to systemd."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: Registry,
        config: EngineConfig,
        connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
        supervisor: Supervisor | None = None,
        engine_pool: asyncpg.Pool | None = None,
        claim_pool: asyncpg.Pool | None = None,
    ) -> None:
        """`pool` serves enqueues and the read side (socket requests, jobs); `engine_pool`, when
        given, is the engine's own for claims, status writes, recovery and pruning, so requests
        and jobs holding every connection of `pool` never stall the queues (issue 14);
        `claim_pool`, when given, takes the claims and due-time reads of a daemon without
        [cluster] from it (db.CLAIM_POOL_OPTIONS: cached plans, issue 20)."""
        self.pool = pool
        self.engine_pool = engine_pool or pool
        self.claim_pool = claim_pool or self.engine_pool
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
        self.flusher = OutcomeFlusher(
            self.engine_pool,
            config.flush_interval_s,
            self.report_db_error,
            self.report_db_ok,
            self._requeued,
        )
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
        # The line per finished job: through the same processors without structlog's per-call
        # plumbing, and written with the loop turn's other lines in one call (logs.LineWriter).
        self.finish_line = LineWriter(self.job_log)

    # ---- enqueue ------------------------------------------------------------------------------

    def prepare(self, request: JobRequest) -> NewJob:
        """The row `request` becomes: its spec's queue, attempts and unique key, the arguments
        validated and dumped as JSON (UnknownJob, ValidationError, ValueError on bad input)."""
        spec = self.registry.get(request.name)
        model = spec.parse(request.args)
        if request.delay is not None and request.delay < 0:
            raise ValueError(f"delay must be zero or positive seconds, got {request.delay}")
        return NewJob(
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
        prepared = [self.prepare(r) for r in requests]
        results = await store.enqueue(self.pool, prepared)
        for job, result in zip(prepared, results, strict=True):
            # A scheduled job wakes its dispatcher too, so it sets its timer to the new due time.
            if result.created and result.state in WAITING:
                self.rewind(job.queue)
        return results

    def wake(self, queue: str) -> None:
        """Wake `queue`'s dispatcher (a no-op for a queue this engine does not run)."""
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
        ids = list(self.flusher.pending_ids())
        for dispatcher in self.dispatchers.values():
            ids.extend(dispatcher.active)
            ids.extend(job.id for job in dispatcher.buffer)
        return ids

    def job_done(self, name: str) -> None:
        """A job of type `name` ended: if the type is capped, its queue may claim again."""
        if name in self._caps:
            self.wake(self.registry.get(name).queue)

    def count_running(self, name: str, delta: int) -> None:
        """Claimed and unfinished jobs of type `name` changed by `delta` (caps count them)."""
        self.running_by_name[name] += delta

    @property
    def clustered(self) -> bool:
        """Whether [cluster] is enabled: claims and caps then go through the database."""
        return self.cluster is not None

    def record(self, outcome: Outcome) -> None:
        """Queue one outcome for the flusher; synchronous, so a cancellation cannot lose it."""
        self.flusher.record(outcome)

    async def flush(self) -> None:
        """Write every recorded outcome now (the flusher does it within milliseconds anyway)."""
        await self.flusher.flush()

    def _requeued(self) -> None:
        if not self.stopping:
            self.rewind()  # a retry may fall due below a claim's lower bound

    def cap_state(self, queue: str) -> tuple[list[str], dict[str, int]]:
        """The capped job types of `queue` and each one's room now ({name: free slots})."""
        capped = [n for n, cap in self._caps.items() if self.registry.specs[n].queue == queue]
        return capped, {n: self.room(n) for n in capped}

    # ---- cluster hooks (issue 19; the logic is in daemon/jobs/cluster.py) ----------------------

    def may_claim(self) -> bool:
        """Claims are allowed: the instance lock is proven and, in a cluster, the lease too."""
        return self.claiming_allowed and (self.cluster is None or self.cluster.may_claim())

    async def claim(
        self,
        conn: asyncpg.Connection | PoolConnectionProxy,
        queue: str,
        limit: int,
        capped: list[str],
        rooms: dict[str, int],
    ) -> list[Claimed]:
        """A claim across the cluster on `conn` (the dispatcher's, so it knows which session a
        lost claim ran on); caps counted in the database (issue 19)."""
        assert self.cluster is not None
        return await self.cluster.claim(conn, queue, limit, capped, rooms, self._caps)

    @property
    def node_id(self) -> int | None:
        """This daemon's cluster node (None without clustering): the claimant of its rows."""
        return None if self.cluster is None else self.cluster.node_id

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
            dispatcher.hand_back(dispatcher.buffer)
            for task in dispatcher.active.values():
                task.cancel()

    def room(self, name: str) -> int:
        """How many more jobs of a capped type may be claimed now (claimed ones count)."""
        if self.cluster is not None and self.cluster.cap_full(name):
            return 0  # at its cap across the cluster a moment ago (issue 19)
        return self._caps[name] - self.running_by_name[name]

    # ---- lifecycle ----------------------------------------------------------------------------

    def queues(self) -> list[str]:
        """Every queue this engine runs: the registered job types' and the configured ones, sorted."""
        return sorted(self.registry.queues() | set(self.config.concurrency))

    async def recover(self) -> store.Recovered:
        """Put back to ready the jobs a previous daemon left running (its attempt refunded), fail
        those interrupted more than max_interruptions times; logs what it did."""
        recovered = await store.recover(self.engine_pool, self.config.max_interruptions)
        if recovered.requeued or recovered.poisoned:
            log.warning(
                "recovered jobs left running by a previous daemon",
                requeued=len(recovered.requeued),
                poisoned=recovered.poisoned,
            )
        return recovered

    async def warm_up(self) -> None:
        """Prepare the claims on the claim pool's connection (store.warm_claims) while the
        daemon's start-up goes on, so the first claim does not pay for a new session's first
        statement. Claims nothing, so it may run before the one-time migrations. A failure is
        only noted: the first claim then prepares them itself. In a cluster, claims run on the
        engine pool with SQL of their own, and nothing is done."""
        if self.clustered or self.claim_pool is self.engine_pool:
            return
        try:
            await store.warm_claims(self.claim_pool, "default")  # any queue: the plans are generic
        except DB_ERRORS as exc:
            log.debug("claim warm-up skipped", error=str(exc))

    async def start(self) -> None:
        """Start a dispatcher per queue, the LISTEN connection (when `connect` was given), the
        flusher, pruner, horizon watch and counter fold, all under the supervisor."""
        paused = await store.paused_queues(self.engine_pool)
        for queue in self.queues():
            conc = self.config.concurrency.get(queue, self.config.default_concurrency)
            types = [n for n, spec in self.registry.specs.items() if spec.queue == queue]
            dispatcher = self.dispatchers[queue] = Dispatcher(
                self,
                self.engine_pool,
                queue,
                conc,
                types,
                claim_batch=self.config.claim_batch,
                fallback_poll_s=self.config.fallback_poll_s,
                claim_pool=self.claim_pool,
            )
            dispatcher.paused = queue in paused
        if self._connect is not None:
            await self._listen()
            self._loops.append(
                self.supervisor.spawn(self._keep_listening(), "engine-listener", critical=True)
            )
        for queue, dispatcher in self.dispatchers.items():
            loop = self.supervisor.spawn(dispatcher.run(), f"dispatch-{queue}", critical=True)
            # stop() waits for these (a claim in flight completes and is handed back) before it
            # cancels the rest. Before issue 16 the list stayed empty, so a stop could cancel a
            # dispatcher inside a claim the server had already committed: its jobs then stayed
            # `running` until the next start recovered them.
            self._dispatch_loops.append(loop)
            self._loops.append(loop)
        self._loops.append(
            self.supervisor.spawn(self.flusher.run(), "engine-flusher", critical=True)
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
        """The database failed for one of the loops: logged once per outage, told to
        `on_db_state` (systemd's STATUS=)."""
        if self.db_healthy:
            self.db_healthy = False
            log.error(
                "database unavailable; jobs wait until it is back",
                error=f"{type(exc).__name__}: {exc}",
            )
            if self.on_db_state:
                self.on_db_state(False, str(exc))

    def report_db_ok(self) -> None:
        """The database answered again after an outage."""
        if not self.db_healthy:
            self.db_healthy = True
            log.info("database reachable again")
            if self.on_db_state:
                self.on_db_state(True, "")

    def set_concurrency(self, queue: str, concurrency: int) -> None:
        """Change how many jobs of `queue` may run at once (reload); running jobs go on."""
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
        """Pause or resume `queue`: stored (other daemons and restarts keep it), and its
        dispatcher hands back what it had claimed but not started."""
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
        await asyncio.shield(self.flusher.final_flush())
        if self._listener is not None and not self._listener.is_closed():
            await close_or_terminate(self._listener)

    # ---- running a job ------------------------------------------------------------------------

    async def execute(self, queue: str, job: Claimed) -> None:
        """Run one claimed job to its end and record the outcome (never raises: every end of the
        handler, a cancellation included, becomes an outcome)."""
        started = time.monotonic()
        JOB_CONTEXT.set({"job_id": job.id, "job": job.name, "queue": queue, "attempt": job.attempt})
        ended: BaseException | None = None
        skipped = False
        try:
            try:
                spec = self.registry.get(job.name)
                args = spec.parse(job.args)
            except (LookupError, ValidationError) as exc:
                # No handler, or stored arguments that can never fit: retrying cannot help.
                raise Unrunnable(exc) from exc
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
                        skipped = True
            else:
                async with self.locks.lock(f"{spec.name}:{spec.lock_key(args)}"):
                    await self._call(spec, ctx, args)
        except (asyncio.CancelledError, Exception) as exc:
            ended = exc  # a cancellation ends this run only: it becomes an outcome below
        finally:
            elapsed = time.monotonic() - started
            if ended is None:
                verdict = outcome_of(job, None, None, elapsed, skipped=skipped)
            else:
                known = self.registry.specs.get(job.name)
                verdict = outcome_of(
                    job,
                    ended,
                    known.retry if known else None,
                    elapsed,
                    by_operator=isinstance(ended, asyncio.CancelledError)
                    and self._cancel_reasons.pop(job.id, None) == "operator",
                    delay_scale=self.config.retry_delay_scale,
                )
            label, result = verdict.label, verdict.outcome
            self.flusher.record(result)
            self.on_finished(job.name, queue, label, elapsed)
            line: dict[str, Any] = {
                "id": job.id,
                "name": job.name,
                "queue": queue,
                "attempt": job.attempt,
                "duration_ms": round((time.monotonic() - started) * 1000, 2),
                "outcome": label,
            }
            if verdict.error:
                line["error"] = verdict.error
            if result.state == "scheduled" and result.run_at is not None:
                line["retry_in_s"] = round((result.run_at - datetime.now(UTC)).total_seconds(), 1)
            JOB_CONTEXT.set(None)  # the finish line names the job in its own fields
            if label in ("succeeded", "skipped", "interrupted", "cancelled"):
                self.finish_line("info", "job finished", line)
            elif label == "retry":
                self.finish_line("warning", "job finished", line)
            else:  # failed or deleted for good: someone has to look (journalctl -p err)
                self.finish_line("error", "job finished", line)

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

    def cancel_running(self, job_id: int) -> bool:
        """An operator's cancel of job `job_id` if this engine holds it: a claimed job is
        deleted at once, a running one is cancelled (then recorded as deleted). False when not here."""
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
