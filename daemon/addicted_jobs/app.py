"""Composition root and lifecycle: start-up in the architecture's order, signals, and shutdown.

Start-up: database (embedded if no DSN) -> instance lock -> schema migrations -> recover running
jobs -> one-time migrations -> control socket -> dispatchers -> cron -> READY=1 -> watchdog.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import signal
import time
from datetime import timedelta
from functools import partial
from pathlib import Path

import structlog
import uvloop

from addicted_jobs import __version__, logs
from addicted_jobs.app_cluster import CLUSTER_OPS, ClusterNode, Standalone, check_schema_known
from addicted_jobs.app_observe import Observers
from addicted_jobs.app_status import reload_changes
from addicted_jobs.control.op import Op
from addicted_jobs.control.ops import ENGINE_OPS, EngineOps
from addicted_jobs.control.server import ControlServer
from addicted_jobs.control.socketfile import ControlSocketError
from addicted_jobs.db import (
    AnotherInstanceRunning,
    Database,
    DatabaseConfigError,
    DatabaseError,
    apply_migrations,
)
from addicted_jobs.domain import Domain
from addicted_jobs.exit_codes import EX_CONFIG
from addicted_jobs.jobs import Registry
from addicted_jobs.jobs.engine import Engine, EngineConfig
from addicted_jobs.jobs.migration import OneTimeMigrationError
from addicted_jobs.jobs.onetime import run_pending
from addicted_jobs.jobs.onetime_state import onetime_rows
from addicted_jobs.jobs.recurring import RecurringScheduler, build_plan, check_crons
from addicted_jobs.jobs.spec import default_registry
from addicted_jobs.jobs.supervisor import Supervisor
from addicted_jobs.settings import (
    DEFAULT_QUEUES,
    ConfigError,
    Settings,
    check_queue_names,
    load_settings,
)
from addicted_jobs.systemd import Notifier, watchdog_interval, watchdog_loop
from addicted_jobs.tasks.ops import SUBTITLE_OPS

log = structlog.get_logger("addicted_jobs")

EXIT_OK = 0
EXIT_FAILURE = 1
# Every socket operation the daemon serves, handlers unbound: the engine's, `nodes`, the domain's.
OPERATIONS: tuple[Op, ...] = (*ENGINE_OPS, *CLUSTER_OPS, *SUBTITLE_OPS)


class App:
    def __init__(
        self, settings: Settings, config_path: Path | None = None, registry: Registry | None = None
    ) -> None:
        self.settings = settings
        self.started_settings = settings  # what needs a restart is measured against this
        self.config_path = config_path
        self.registry = registry or default_registry()
        load_job_modules(self.registry, settings.engine.job_modules)
        self.notifier = Notifier()
        self.supervisor = Supervisor(on_critical_failure=self._critical_failure)
        self.started_at = time.monotonic()
        self.db: Database | None = None
        self.cluster: ClusterNode | None = None  # [cluster] enabled (issue 19)
        self.engine: Engine | None = None
        self.control: ControlServer | None = None
        self.scheduler: RecurringScheduler | None = None
        self.domain: Domain | None = None
        self.observers = Observers()  # top's counters, the STATUS= line, metrics
        self.reload_report: dict[str, list[str]] = {}  # what the last reload changed
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()  # set once READY=1 is sent (the demo waits on it)
        self._signals = 0
        self._exit_code = EXIT_OK

    # ---- signals ------------------------------------------------------------------------------

    def _on_stop_signal(self, signame: str) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stopping", signal=signame, grace_s=self.settings.shutdown.grace_seconds)
            self._stop.set()
        else:
            log.warning("second signal: skipping the rest of the grace period", signal=signame)
            if self.engine is not None:
                self.engine.hurry()

    def _on_reload_signal(self) -> None:
        self.supervisor.spawn(self.reload(), "reload")

    def _critical_failure(self, name: str, exc: BaseException) -> None:
        log.critical(
            "a vital task died; shutting down so systemd restarts us", task=name, error=str(exc)
        )
        self._exit_code = EXIT_FAILURE
        self._stop.set()

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def reload(self) -> bool:
        """Re-read the config and apply what can change at run time; keep the old one if invalid."""
        return await self.reload_problem() is None

    async def reload_problem(self) -> str | None:
        """Like reload(); returns why the new configuration was refused, None when applied."""
        try:
            new = load_settings(self.config_path)
            plan = build_plan(new.recurring, self.registry)
            if self.domain is not None:  # the registry is complete once the domain registered
                check_queue_names(new, self.known_queues())
        except ConfigError as exc:
            log.error(
                "reload refused: the new configuration is invalid; keeping the old one",
                error=str(exc),
            )
            return str(exc)
        self.reload_report = reload_changes(self.settings, new, self.started_settings)
        logs.set_level(new.log.level)
        if self.engine is not None:
            self.engine.refresh_logger()
            for queue in self.engine.dispatchers:
                self.engine.set_concurrency(queue, new.queue_concurrency(queue))
        if self.scheduler is not None:
            self.scheduler.grace = timedelta(seconds=new.scheduler.misfire_grace_s)
            self.scheduler.apply(plan)
        self.settings = new
        log.info("configuration reloaded", level=new.log.level, **self.reload_report)
        return None

    # ---- lifecycle ----------------------------------------------------------------------------

    def status(self, text: str) -> None:
        self.notifier.status(text)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        try:
            await self._start()
        except DatabaseConfigError as exc:
            log.error("start-up failed: bad configuration", error=str(exc))
            await self._shutdown()
            return EX_CONFIG
        except (
            DatabaseError,
            AnotherInstanceRunning,
            ControlSocketError,
            OneTimeMigrationError,
        ) as exc:
            log.error("start-up failed", error=str(exc))
            await self._shutdown()
            return EXIT_FAILURE
        except ConfigError as exc:
            log.error("start-up failed: bad configuration", error=str(exc))
            await self._shutdown()
            return EX_CONFIG
        except OSError as exc:
            # A read-only or unwritable state directory, a full disk, a missing directory: the
            # environment the operator must fix, in one line (no traceback), and 78 so that
            # Restart=on-failure does not loop on it (RestartPreventExitStatus=78).
            log.error(
                "start-up failed: cannot use a file or directory", error=describe_os_error(exc)
            )
            await self._shutdown()
            return EX_CONFIG
        await self._stop.wait()
        await self._shutdown()
        return self._exit_code

    async def _start(self) -> None:
        settings = self.settings
        # Checked before anything starts: a bad cron expression is a config error (78).
        check_crons(settings.recurring)
        check_writable_dir(settings.state.dir, "state directory ([state] dir)")
        log.info(
            "starting",
            version=__version__,
            pid=os.getpid(),
            state_dir=str(settings.state.dir),
            socket=str(settings.socket_path),
            config=str(self.config_path) if self.config_path else None,
        )
        self.status("connecting to the database")
        self.db = Database(
            settings.database.dsn,
            settings.state.dir,
            pool_min=settings.database.pool_min,
            pool_max=settings.pool_size(),
            connect_timeout=settings.database.connect_timeout_s,
            acquire_timeout=settings.database.acquire_timeout_s,
            spare_connections=2,  # the instance lock's and the engine's LISTEN
        )
        warn_pool_exhaustion(settings)
        await self.db.start()
        self.db.instance_lock_shared = settings.cluster.enabled  # nodes run side by side
        await self.db.take_instance_lock()
        assert self.db.pool is not None
        self.status("applying schema migrations")
        async with self.db.pool.acquire() as conn:
            # One node applies them (an advisory lock), the others wait, then find them applied.
            await apply_migrations(conn)
            await check_schema_known(conn)
        self.domain = await Domain.open(settings, self.db.pool)
        self.domain.register_jobs(self.registry)
        check_queue_names(settings, self.known_queues())
        plan = build_plan(settings.recurring, self.registry)
        self.engine = Engine(
            self.db.pool,
            self.registry,
            EngineConfig.from_settings(settings),
            connect=self.db.connect,
            supervisor=self.supervisor,
            engine_pool=self.db.engine_pool,
            claim_pool=self.db.claim_pool,
        )
        self.engine.on_db_state = self._db_state
        if not settings.cluster.enabled:
            # Alongside the steps below, which use other connections: ~15-25 ms of the first
            # claim that its job no longer waits for (Engine.warm_up).
            self.supervisor.spawn(self.engine.warm_up(), "engine-warm-up")
        self.observers.start(settings, self.engine, self.db.pool, self.domain)
        self.domain.bind(self.engine)
        if settings.cluster.enabled:  # issue 19: only the jobs of dead nodes are recovered
            self.cluster = ClusterNode(settings, self.db, self.engine, __version__)
            self.cluster.share_limit(self.domain.resources.addic7ed.limiter)
            await self.cluster.join()
            node_ops = self.cluster.ops()
        else:
            await self.engine.recover()
            node_ops = Standalone().ops()
        # One-time data migrations: after recovery, before the socket opens and any job is claimed.
        # In a cluster one node runs them; the others wait for its lock (up to migrations_wait_s).
        self.status("running one-time migrations")
        migrations = self.domain.migrations()
        await run_pending(
            self.db.pool,
            migrations,
            notifier=self.notifier,
            enqueue=self.engine.enqueue,
            lock_wait_s=settings.cluster.migrations_wait_s if settings.cluster.enabled else 30.0,
        )
        self.scheduler = RecurringScheduler(self.engine, plan, settings.scheduler.misfire_grace_s)
        ops = EngineOps(
            self.engine,
            version=__version__,
            uptime=self.uptime,
            state=lambda: "stopping" if self._stop.is_set() else "running",
            scheduler=self.scheduler,
            reload=self.reload_problem,
            onetime=partial(onetime_rows, self.db.pool, migrations),
            activity=self.observers.activity,
            upstream=self.observers.upstream_status,
            reload_report=lambda: self.reload_report,
        )
        self.control = ControlServer(
            settings.socket_path,
            [*ops.ops(), *node_ops, *self.domain.ops(self.engine)],
            max_request_bytes=settings.control.max_request_bytes,
            idle_timeout_s=settings.control.idle_timeout_s,
            request_timeout_s=settings.control.request_timeout_s,
            max_connections=settings.control.max_connections,
            max_buffered_bytes=settings.control.max_buffered_bytes,
            max_reply_bytes=settings.control.max_reply_bytes,
        )
        await self.control.start()
        await self.engine.start()
        await self.db.close_spares()  # the lock and LISTEN have theirs; any left would sit idle
        await self.scheduler.start()
        queues = ", ".join(f"{q}={d.concurrency}" for q, d in self.engine.dispatchers.items())
        log.info(
            "ready",
            queues=queues,
            socket=str(settings.socket_path),
            state_dir=str(settings.state.dir),
        )
        self.notifier.ready(f"ready: {len(self.engine.dispatchers)} queues")
        self.ready.set()
        interval = watchdog_interval()
        if interval is not None:
            self.supervisor.spawn(watchdog_loop(self.notifier, interval), "watchdog")
        self.supervisor.spawn(self._keep_instance_lock(), "instance-lock")
        if self.cluster is not None:
            self.supervisor.spawn(self.cluster.cluster.run(), "cluster-heartbeat", critical=True)
        status_loop = self.observers.status_line.loop(self.engine, self.status)
        self.supervisor.spawn(status_loop, "status-line")

    async def _keep_instance_lock(self) -> None:
        """A database restart or a silent connection ends the session holding the instance lock:
        claiming pauses until it is taken again, and the daemon stops if another daemon took it
        meanwhile, so two never work on one database."""
        assert self.db is not None and self.engine is not None
        engine = self.engine

        def held(yes: bool) -> None:
            engine.claiming_allowed = yes

        try:
            await self.db.keep_instance_lock(held)
        except AnotherInstanceRunning as exc:
            log.critical(
                "another daemon took this database while it was unreachable", error=str(exc)
            )
            self._exit_code = EXIT_FAILURE
            self._stop.set()

    def _db_state(self, healthy: bool, error: str) -> None:
        if healthy:
            self.status("ready")
        else:
            self.status(f"database unavailable: {error[:200]}")

    async def _shutdown(self) -> None:
        self.notifier.stopping("stopping")
        self.supervisor.stopping = True
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.engine is not None and self.engine.started:
            try:
                await self.engine.stop(self.settings.shutdown.grace_seconds)
            except Exception as exc:  # the jobs stay 'running' and are recovered at the next start
                log.error(
                    "could not record the last job outcomes", error=f"{type(exc).__name__}: {exc}"
                )
        if self.cluster is not None:
            await self.cluster.leave()
        if self.control is not None:
            await self.control.stop()
        await self.observers.stop()
        if self.domain is not None:
            await self.domain.close()
        await self.supervisor.cancel_all()
        if self.db is not None:
            await self.db.close()
        log.info("stopped", uptime_s=round(time.monotonic() - self.started_at, 1))
        self.notifier.close()

    def known_queues(self) -> set[str]:
        """Queues some registered job runs on, plus the built-in ones (all may be configured)."""
        return self.registry.queues() | DEFAULT_QUEUES

    def uptime(self) -> float:
        return time.monotonic() - self.started_at


def describe_os_error(exc: OSError) -> str:
    """'<what failed> <path>: <reason>' for an OSError, without a traceback."""
    where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if exc.filename else reason


def check_writable_dir(path: Path, what: str) -> None:
    """Create `path` if needed and prove it writable; OSError naming `what` and `path` if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, f"{what} is not usable: {exc.strerror}", str(path)) from None


def warn_pool_exhaustion(settings: Settings) -> None:
    """Jobs may each hold a pooled connection: when an explicit `[database] pool_max` is no
    larger than the queues' concurrency added up, jobs can take every connection and socket
    requests wait (then answer `unavailable`). The derived default never is (Settings.pool_size).
    The engine's own connections are not affected (addicted_jobs.pools)."""
    total = settings.concurrency_total()
    pool_max = settings.pool_size()
    if total >= pool_max:
        log.warning(
            f"queue concurrency can exhaust the connection pool: [queues.*] concurrency adds up "
            f"to {total}, [database] pool_max is {pool_max}; jobs holding connections make "
            "socket requests wait, then answer unavailable. Raise [database] pool_max above "
            f"{total} (or remove it: the default follows the concurrency), or lower the "
            "concurrency",
            queues_concurrency_total=total,
            pool_max=pool_max,
            acquire_timeout_s=settings.database.acquire_timeout_s,
        )


def load_job_modules(registry: Registry, modules: list[str]) -> None:
    """Import each configured module and let it register its job types."""
    for name in modules:
        try:
            module = importlib.import_module(name)
            module.register(registry)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"[engine] job_modules: cannot load {name!r}: {exc}") from exc


def run_daemon(settings: Settings, config_path: Path | None) -> int:
    """Run the daemon until it stops; the process's exit status. Once the daemon is built, the
    cyclic garbage collector is on (whether or not the caller, cmd_run, turned it off for the
    imports) and runs over the objects made after: those that exist by then are frozen
    (gc.freeze), so a full collection no longer walks the ~87,000 objects of the imported code,
    a ~30 ms stall of the event loop each time. Freezing assumes the build made no cyclic
    garbage worth reclaiming: measured, a collection at that point finds ~10 objects."""
    logs.configure(settings.log.level, settings.log.format)
    try:
        app = App(settings, config_path)
    except ConfigError as exc:
        log.error("bad configuration", error=str(exc))
        return EX_CONFIG
    finally:
        gc.freeze()
        gc.enable()
    try:
        # uvloop: the engine's per-job overhead is mostly event-loop work (tasks, sockets).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(app.run())
    finally:
        # A signal arriving after the loop closed must not turn a clean stop into a traceback.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
