"""Everything that watches the running daemon, wired by App: `top`'s activity counters, the
STATUS= line's last failure, the Prometheus metrics (when configured), and `top`'s upstream line.

One fan-out is the engine's on_finished hook; the upstream clients' attempts arrive through
resilience.ATTEMPT_OBSERVERS. Nothing here runs unless App starts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from addicted_jobs.app_status import StatusLine
from addicted_jobs.control.activity import Activity
from addicted_jobs.domain import Domain
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.settings import ConfigError, Settings
from addicted_jobs.tasks.ops.credentials import credentials_list
from addicted_jobs.upstream.resilience import ATTEMPT_OBSERVERS

if TYPE_CHECKING:
    from addicted_jobs.metrics import MetricsService


class Observers:
    def __init__(self) -> None:
        self.activity = Activity()  # the last hour's throughput and upstream rate, for `top`
        self.status_line = StatusLine()
        self.metrics: MetricsService | None = None
        self.domain: Domain | None = None
        self.pool: asyncpg.Pool | None = None

    def start(self, settings: Settings, engine: Engine, pool: asyncpg.Pool, domain: Domain) -> None:
        """Hook into the engine and the upstream clients; open the metrics listener when
        `[metrics] listen` is set (ConfigError when the address cannot be used)."""
        self.domain, self.pool = domain, pool
        conf = settings.metrics
        if conf.listen or conf.textfile is not None:
            # Imported only when configured: prometheus_client is ~20 ms of every start-up.
            from addicted_jobs.metrics import Metrics, MetricsService

            service = MetricsService(Metrics(), conf.listen, conf.textfile, conf.refresh_s)
            try:
                service.start(pool, self.breakers)
            except OSError as exc:
                raise ConfigError(
                    f"key 'metrics.listen' = {conf.listen!r}: cannot listen: {exc}"
                ) from exc
            self.metrics = service
        hooks = [self.activity.job_finished, self.status_line.job_finished]
        if self.metrics is not None:
            hooks.append(self.metrics.metrics.job_finished)

        def on_finished(name: str, queue: str, outcome: str, seconds: float) -> None:
            for hook in hooks:
                hook(name, queue, outcome, seconds)

        engine.on_finished = on_finished
        ATTEMPT_OBSERVERS.append(self.activity.upstream_attempt)

    def breakers(self) -> dict[str, str]:
        """Circuit-breaker state per upstream ("closed", "half_open", "open")."""
        if self.domain is None:
            return {}
        resources = self.domain.resources
        clients = [resources.addic7ed, *([resources.tmdb] if resources.tmdb else [])]
        return {c.breaker.name: str(c.breaker.state) for c in clients}

    async def upstream_status(self) -> dict[str, Any]:
        """`top`'s upstream line: breaker state per upstream, credentials with quota left."""
        assert self.pool is not None
        listed = (await credentials_list(self.pool))["credentials"]
        with_quota = sum(1 for c in listed if c["exceeded_since"] is None)
        return {
            "breakers": self.breakers(),
            "credentials": {"total": len(listed), "with_quota": with_quota},
        }

    async def stop(self) -> None:
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None
        if self.activity.upstream_attempt in ATTEMPT_OBSERVERS:
            ATTEMPT_OBSERVERS.remove(self.activity.upstream_attempt)
