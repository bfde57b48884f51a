"""What both upstream clients share: one httpx.AsyncClient for their lifetime, behind a circuit
breaker, a politeness limiter and a retrying sender, closed as an async context manager.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

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
        http: httpx.AsyncClient,
        *,
        retry: RetrySettings,
        breaker: BreakerSettings,
        requests_per_second: float,
        timeouts: Timeouts,
        retry_statuses: frozenset[int],
        failure_statuses: frozenset[int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
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

    async def aclose(self) -> None:
        await self._http.aclose()
