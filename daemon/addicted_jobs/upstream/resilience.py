"""Retry with backoff, circuit breaker and politeness limit, shared by the upstream HTTP clients.

Order per call, outer to inner: overall timeout -> retries -> breaker check -> rate limit ->
one attempt under its own timeout. The breaker counts every attempt, as the original's did.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import structlog

from addicted_jobs.settings import UpstreamResilience
from addicted_jobs.upstream.errors import UpstreamUnavailable

# httpx and tenacity (~50 ms of the daemon's ~0.6 s start-up together) load with the first
# upstream call: a daemon that only runs engine jobs never needs them
# (tests/unit/upstream/test_lazy_imports.py). With [storage] backend = "s3", aiobotocore loads
# httpx at start all the same; tenacity still waits.
if TYPE_CHECKING:
    import httpx
    from tenacity import RetryCallState

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
# Called with (upstream, result) after every attempt: an HTTP status class ("2xx"..."5xx"),
# "timeout", "error" (no response) or "circuit_open" (failed fast). The metrics module
# subscribes from app.py; upstream code never imports it.
ATTEMPT_OBSERVERS: list[Callable[[str, str], None]] = []


def _observe(upstream: str, result: str) -> None:
    for observer in ATTEMPT_OBSERVERS:
        observer(upstream, result)


# The numbers an upstream is configured with live in settings.py ([addic7ed], [tmdb]); these
# classes carry them to the clients and hold only what is not configurable.
TOTAL_TIMEOUT_S = 300.0  # one call, retries included, at least
CONNECT_TIMEOUT_S = 30.0  # one connection attempt, at most


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Retries after the first attempt; the delay (seconds) grows from base_delay to max_delay."""

    max_retries: int
    base_delay: float
    max_delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSettings:
    """Opens for `open_seconds` once `failure_ratio` of at least `min_calls` attempts in the last
    `window_seconds` failed."""

    min_calls: int
    open_seconds: float
    failure_ratio: float = 0.5
    window_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: one attempt, the whole call with its retries, connecting."""

    attempt: float
    total: float = TOTAL_TIMEOUT_S
    connect: float = CONNECT_TIMEOUT_S

    @classmethod
    def for_attempt(cls, attempt: float) -> Timeouts:
        """An attempt's limit, the call's never below it, connecting never above it."""
        return cls(attempt, max(attempt, TOTAL_TIMEOUT_S), min(CONNECT_TIMEOUT_S, attempt))


class ClientResilience(TypedDict):
    """The keyword arguments every upstream client takes for its resilience."""

    retry: RetrySettings
    breaker: BreakerSettings
    timeouts: Timeouts


def resilience_of(conf: UpstreamResilience) -> ClientResilience:
    """A client's retry, breaker and timeouts from its config section ([addic7ed] or [tmdb]):
    `Addic7edClient(url, **resilience_of(settings.addic7ed))`."""
    return {
        "retry": RetrySettings(conf.retries, conf.retry_base_s, conf.retry_max_s),
        "breaker": BreakerSettings(
            min_calls=conf.breaker_min_calls, open_seconds=conf.breaker_open_s
        ),
        "timeouts": Timeouts.for_attempt(conf.attempt_timeout_s),
    }


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens when the failure ratio over a sliding window reaches the threshold.

    While open every call fails fast. After the cool-down one probe call is let through:
    its success closes the circuit, its failure opens it again for another cool-down.
    """

    def __init__(self, name: str, settings: BreakerSettings, clock: Clock = time.monotonic) -> None:
        self.name = name
        self._settings = settings
        self._clock = clock
        self._calls: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at < self._settings.open_seconds:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def before_call(self) -> bool:
        """Let a call through (True if it is the half-open probe) or raise UpstreamUnavailable."""
        state = self.state
        if state is CircuitState.CLOSED:
            return False
        if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        if state is CircuitState.HALF_OPEN:
            raise UpstreamUnavailable(self.name, "circuit half-open, a probe call is in flight")
        assert self._opened_at is not None
        left = max(0.0, self._settings.open_seconds - (self._clock() - self._opened_at))
        raise UpstreamUnavailable(self.name, f"circuit open, next probe in {left:.1f}s")

    def record(self, failed: bool, probe: bool = False) -> None:
        now = self._clock()
        if self._opened_at is not None and not probe:
            return  # started before the circuit opened: its outcome is already stale
        if probe:
            self._probe_in_flight = False
            if failed:
                self._opened_at = now
                log.warning("circuit re-opened after a failed probe", upstream=self.name)
            else:
                self._opened_at = None
                self._calls.clear()
                self._failures = 0
                log.info("circuit closed", upstream=self.name)
            return
        self._calls.append((now, failed))
        self._failures += failed
        horizon = now - self._settings.window_seconds
        while self._calls and self._calls[0][0] < horizon:
            self._failures -= self._calls.popleft()[1]
        total = len(self._calls)
        if (
            total >= self._settings.min_calls
            and self._failures / total >= self._settings.failure_ratio
        ):
            self._opened_at = now
            log.warning(
                "circuit opened",
                upstream=self.name,
                failures=self._failures,
                calls=total,
                open_seconds=self._settings.open_seconds,
            )

    def abandon(self, probe: bool) -> None:
        """A call ended without an outcome (cancelled): free the probe slot if it held it."""
        if probe:
            self._probe_in_flight = False


class RateLimiter:
    """Spaces requests at least 1/rate seconds apart; a rate of 0 means unlimited."""

    def __init__(self, requests_per_second: float, clock: Clock = time.monotonic) -> None:
        self._interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0
        self._clock = clock
        self._next_slot = 0.0

    def set_rate(self, requests_per_second: float) -> None:
        """Change the rate from the next request on (a cluster node's share of the limit when
        the number of live nodes changes); 0 means unlimited."""
        self._interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0

    async def acquire(self) -> None:
        if self._interval == 0.0:
            return
        # Reserve the slot before waiting so concurrent callers queue up behind each other.
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class ResilientSender:
    """Runs one logical request through retries, the breaker and the rate limit."""

    def __init__(
        self,
        upstream: str,
        *,
        retry: RetrySettings,
        breaker: CircuitBreaker,
        limiter: RateLimiter,
        timeouts: Timeouts,
        retry_statuses: frozenset[int],
        failure_statuses: frozenset[int],
    ) -> None:
        self.upstream = upstream
        self.breaker = breaker
        self._retry = retry
        self._limiter = limiter
        self._timeouts = timeouts
        self._retry_statuses = retry_statuses
        self._failure_statuses = failure_statuses

    def is_retry_status(self, status: int) -> bool:
        return status in self._retry_statuses or status >= 500

    async def send(
        self, attempt: Callable[[], Awaitable[httpx.Response]], what: str
    ) -> httpx.Response:
        """Return the last response (possibly a retryable status once retries ran out).

        Raises UpstreamUnavailable when the circuit is open, when every attempt failed
        without a response, or when the overall timeout passes.
        """
        from tenacity import (
            AsyncRetrying,
            retry_if_exception,
            retry_if_result,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_retries + 1),
            wait=wait_exponential_jitter(
                multiplier=self._retry.base_delay,
                max=self._retry.max_delay,
                jitter=self._retry.base_delay,
            ),
            retry=retry_if_exception(_is_transient) | retry_if_result(self._retry_on),
            before_sleep=lambda state: self._log_retry(state, what),
            retry_error_callback=lambda state: self._exhausted(state, what),
        )
        try:
            async with asyncio.timeout(self._timeouts.total):
                response: httpx.Response = await retrying(self._one_attempt, attempt)
                return response
        except TimeoutError as exc:
            raise UpstreamUnavailable(
                self.upstream, f"{what}: no answer within {self._timeouts.total:g}s overall"
            ) from exc

    def _retry_on(self, response: httpx.Response) -> bool:
        return self.is_retry_status(response.status_code)

    async def _one_attempt(
        self, attempt: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        try:
            probe = self.breaker.before_call()
        except UpstreamUnavailable:
            _observe(self.upstream, "circuit_open")
            raise
        try:
            await self._limiter.acquire()
            async with asyncio.timeout(self._timeouts.attempt):
                response = await attempt()
        except BaseException as exc:
            if _is_transient(exc):
                self.breaker.record(failed=True, probe=probe)
                _observe(self.upstream, "timeout" if isinstance(exc, TimeoutError) else "error")
            else:
                self.breaker.abandon(probe)
            raise
        status = response.status_code
        _observe(self.upstream, f"{status // 100}xx")
        self.breaker.record(failed=status in self._failure_statuses or status >= 500, probe=probe)
        return response

    def _log_retry(self, state: RetryCallState, what: str) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        reason = (
            repr(outcome.exception()) if outcome.failed else f"HTTP {outcome.result().status_code}"
        )
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "upstream attempt failed, retrying",
            upstream=self.upstream,
            request=what,
            attempt=state.attempt_number,
            reason=reason,
            delay_s=round(delay, 3),
        )

    def _exhausted(self, state: RetryCallState, what: str) -> httpx.Response:
        outcome = state.outcome
        assert outcome is not None
        if not outcome.failed:
            result: httpx.Response = outcome.result()
            return result
        exc = outcome.exception()
        raise UpstreamUnavailable(
            self.upstream, f"{what} failed {state.attempt_number} time(s), last error {exc!r}"
        ) from exc


def _is_transient(exc: BaseException) -> bool:
    # httpx.TransportError covers connect/read errors, resets, protocol errors and its timeouts;
    # TimeoutError is the per-attempt timeout above. httpx is loaded by the time anything is
    # sent (UpstreamSession._build); an attempt cancelled before that pays for the import here.
    import httpx

    return isinstance(exc, httpx.TransportError | TimeoutError)
