"""Prometheus metrics (prometheus_client): served on an opt-in loopback listener and/or written to
a node-exporter textfile. Off unless `[metrics] listen` or `textfile` is set.

Events arrive through hooks app.py registers (the engine's on_finished, the upstream clients'
observer lists), so neither the engine nor the upstream code imports this module. Table counts
(jobs by queue and state, the oldest ready job, credentials, the last catalogue sync) are read
every `[metrics] refresh_s` seconds by one task, never at scrape time: a scrape costs no query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import write_to_textfile

from addicted_jobs import metrics_http
from addicted_jobs.jobs import store
from addicted_jobs.upstream import addic7ed, resilience

log = structlog.get_logger("addicted_jobs.metrics")
CATALOGUE_SYNC_JOB = "refresh_available_shows"  # the original's nightly catalogue sync
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600, 1800)
CIRCUIT_STATES = ("closed", "half_open", "open")
Breakers = Callable[[], dict[str, str]]  # upstream name -> circuit state


class Metrics:
    """Every metric of the daemon in its own registry (no process/platform collectors: the
    node exporter has those). Names are listed in the README's Metrics section."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Gauge(
            "addicted_jobs_jobs", "Jobs by queue and state", ["queue", "state"], registry=r
        )
        self.oldest_ready = Gauge(
            "addicted_jobs_queue_oldest_ready_seconds",
            "Age of the oldest due ready job per queue: how long work waits to start",
            ["queue"],
            registry=r,
        )
        self.finished = Counter(
            "addicted_jobs_finished",
            "Job runs finished, by job and outcome",
            ["name", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "addicted_jobs_job_duration_seconds",
            "Run time of one attempt, by job",
            ["name"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.upstream = Counter(
            "addicted_jobs_upstream_requests",
            "Upstream HTTP attempts by upstream and result (2xx..5xx, timeout, error, circuit_open)",
            ["upstream", "result"],
            registry=r,
        )
        self.subtitles = Counter(
            "upstream_subtitle_requests",
            "Addic7ed subtitle downloads by result (the original's counter)",
            ["result"],
            registry=r,
        )
        self.circuit = Gauge(
            "addicted_jobs_upstream_circuit_state",
            "1 for the circuit breaker's current state per upstream",
            ["upstream", "state"],
            registry=r,
        )
        self.downloads_used = Gauge(
            "addicted_jobs_credential_downloads_used",
            "Downloads counted today on each Addic7ed credential",
            ["credential"],
            registry=r,
        )
        self.quota_exceeded = Gauge(
            "addicted_jobs_credential_quota_exceeded",
            "1 while a credential's daily download quota is used up",
            ["credential"],
            registry=r,
        )
        self.with_quota = Gauge(
            "addicted_jobs_credentials_with_quota",
            "Credentials with download quota left",
            registry=r,
        )
        self.last_sync = Gauge(
            "addicted_jobs_catalogue_last_sync_timestamp_seconds",
            "Unix time the last catalogue sync (refresh_available_shows) succeeded",
            registry=r,
        )
        self.database_up = Gauge(
            "addicted_jobs_database_up",
            "1 when the last metrics refresh reached PostgreSQL",
            registry=r,
        )
        # labels() is a dict lookup plus locking; the per-job hook caches its children.
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._last_sync = 0.0

    # ---- hooks ------------------------------------------------------------------------------

    def job_finished(self, name: str, queue: str, outcome: str, seconds: float) -> None:
        """Engine.on_finished: one run of `name` ended with `outcome` after `seconds`."""
        child = self._children.get((name, outcome))
        if child is None:
            child = (self.finished.labels(name, outcome), self.duration.labels(name))
            self._children[(name, outcome)] = child
        child[0].inc()
        child[1].observe(seconds)
        if name == CATALOGUE_SYNC_JOB and outcome == "succeeded":
            self._last_sync = time.time()
            self.last_sync.set(self._last_sync)

    def upstream_attempt(self, upstream: str, result: str) -> None:
        self.upstream.labels(upstream, result).inc()

    def subtitle_download(self, result: str) -> None:
        self.subtitles.labels(result).inc()

    def subscribe(self) -> None:
        """Start receiving the upstream clients' events (undone by unsubscribe)."""
        resilience.ATTEMPT_OBSERVERS.append(self.upstream_attempt)
        addic7ed.DOWNLOAD_OBSERVERS.append(self.subtitle_download)

    def unsubscribe(self) -> None:
        for observers, hook in (
            (resilience.ATTEMPT_OBSERVERS, self.upstream_attempt),
            (addic7ed.DOWNLOAD_OBSERVERS, self.subtitle_download),
        ):
            if hook in observers:
                observers.remove(hook)  # type: ignore[arg-type]

    # ---- periodic reads ---------------------------------------------------------------------

    async def refresh(self, pool: asyncpg.Pool, breakers: Breakers) -> None:
        """Re-read the table counts and the breakers; a database error sets database_up 0."""
        for upstream, state in breakers().items():
            for candidate in CIRCUIT_STATES:
                self.circuit.labels(upstream, candidate).set(1 if candidate == state else 0)
        try:
            counts = await store.queue_counts(pool)
            credentials = await pool.fetch(
                """SELECT id, download_usage, download_exceeded_date IS NOT NULL AS exceeded
                   FROM addicted_user_credentials"""
            )
            synced = await store.last_success(pool, CATALOGUE_SYNC_JOB)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.database_up.set(0)
            log.debug("metrics refresh could not read the database", error=str(exc))
            return
        self.database_up.set(1)
        for queue, entry in counts.items():
            for state, n in entry["counts"].items():
                self.jobs.labels(queue, state).set(n)
            self.oldest_ready.labels(queue).set(entry["oldest_ready_age_s"] or 0.0)
        self.downloads_used.clear()
        self.quota_exceeded.clear()
        for row in credentials:
            self.downloads_used.labels(str(row["id"])).set(row["download_usage"])
            self.quota_exceeded.labels(str(row["id"])).set(1 if row["exceeded"] else 0)
        self.with_quota.set(sum(1 for row in credentials if not row["exceeded"]))
        if synced is not None and float(synced) > self._last_sync:
            self._last_sync = float(synced)  # the job row outlives a restart (until pruned)
            self.last_sync.set(self._last_sync)

    def render(self) -> bytes:
        """The text exposition format, as a scrape gets it."""
        return generate_latest(self.registry)


class MetricsService:
    """The listener thread and the refresh task; start() and stop() from the app's lifecycle."""

    def __init__(self, metrics: Metrics, listen: str, textfile: Path | None, every: float) -> None:
        self.metrics = metrics
        self.listen = listen
        self.textfile = textfile
        self.every = every
        self._server: metrics_http.MetricsEndpoint | None = None
        self._serving: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, pool: asyncpg.Pool, breakers: Breakers) -> None:
        """Open the listener (OSError when the address is taken) and start refreshing."""
        if self.listen:
            host, _, port = self.listen.rpartition(":")
            # On the event loop, not prometheus_client's thread-per-connection server: idle
            # connections from any local user could pile up threads there (metrics_http).
            sock = metrics_http.bind(host.strip("[]"), int(port))
            self._server = metrics_http.MetricsEndpoint(self.metrics.render)
            self._serving = asyncio.get_running_loop().create_task(self._server.start(sock))
            log.info("metrics listener open", address=self.listen)
        self.metrics.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._loop(pool, breakers))

    async def _loop(self, pool: asyncpg.Pool, breakers: Breakers) -> None:
        while True:
            await self.metrics.refresh(pool, breakers)
            if self.textfile is not None:
                try:
                    write_to_textfile(str(self.textfile), self.metrics.registry)
                except OSError as exc:
                    log.warning(
                        "cannot write the metrics textfile", path=str(self.textfile), error=str(exc)
                    )
            await asyncio.sleep(self.every)

    async def stop(self) -> None:
        self.metrics.unsubscribe()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._server is not None:
            if self._serving is not None:
                await asyncio.gather(self._serving, return_exceptions=True)
            await self._server.stop()
            self._server = None
