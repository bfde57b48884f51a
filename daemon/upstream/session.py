"""What both upstream clients share: one httpx.AsyncClient for their lifetime, behind a circuit
breaker, a politeness limiter and a retrying sender, closed as an async context manager.

The AsyncClient is built on first use: building one loads the CA bundle (~40 ms), which a daemon
that starts without upstream work to do should not spend before it claims its first job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx

from daemon.upstream.resilience import (
    BreakerSettings,
    CircuitBreaker,
    RateLimiter,
    ResilientSender,
    RetrySettings,
    Timeouts,
)


class UpstreamSession:
    def __init__(
        self,
        upstream: str,
        base_url: str,
        *,
        max_connections: int,
        client_options: dict[str, Any],
        retry: RetrySettings,
        breaker: BreakerSettings,
        requests_per_second: float,
        timeouts: Timeouts,
        retry_statuses: frozenset[int],
        failure_statuses: frozenset[int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._client_options = client_options  # what differs between upstreams: headers, proxy...
        self._client: httpx.AsyncClient | None = None
        self.breaker = CircuitBreaker(upstream, breaker, clock)
        self._sender = ResilientSender(
            upstream,
            retry=retry,
            breaker=self.breaker,
            limiter=RateLimiter(requests_per_second, clock),
            timeouts=timeouts,
            retry_statuses=retry_statuses,
            failure_statuses=failure_statuses,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                follow_redirects=False,
                timeout=httpx.Timeout(self._timeouts.attempt, connect=self._timeouts.connect),
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                ),
                **self._client_options,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
