"""What both upstream clients share: one httpx.AsyncClient for their lifetime, behind a circuit
breaker, a politeness limiter and a retrying sender, closed as an async context manager.

The AsyncClient is built on first use: building one loads the CA bundle (~40 ms), which a daemon
that starts without upstream work to do should not spend before it claims its first job.
"""

from __future__ import annotations

import asyncio
import mmap
import time
import zlib
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from addicted_jobs.upstream.errors import BodyTooLarge
from addicted_jobs.upstream.resilience import (
    BreakerSettings,
    CircuitBreaker,
    RateLimiter,
    ResilientSender,
    RetrySettings,
    Timeouts,
)

# httpx (~40 ms of the daemon's start-up) loads when the first client is built: a daemon that only
# runs engine jobs never needs it (tests/unit/upstream/test_lazy_imports.py).
if TYPE_CHECKING:
    import httpx

DEFAULT_MAX_PAGE_BYTES = 8 * 1024 * 1024
# Decompression runs in steps of this many output bytes, yielding to the event loop between
# them: a gzip bomb costs ~1 ms of loop time per step and stops at the cap, never expands whole.
INFLATE_STEP = 256 * 1024
RAW_CHUNK = 64 * 1024
# Only what we decode ourselves, step by step; httpx would also offer br and zstd, which it
# decodes in one call per network chunk, unbounded.
ACCEPT_ENCODING = "gzip, deflate"
_DROPPED_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def _inflater(encoding: str, what: str) -> Any:
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise BodyTooLarge(what, f"a body in gzip, deflate or identity encoding (got {encoding!r})")


async def read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    """The decoded body of a streamed `response`, at most `limit` bytes (decoded; the raw bytes
    are capped too), counted while reading. Raises BodyTooLarge past the cap, for an encoding
    other than gzip/deflate/identity, or for a corrupt compressed body."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(what, f"a body within {limit} bytes (Content-Length {declared})")
    inflater = _inflater(response.headers.get("content-encoding", "").strip().lower(), what)
    # An anonymous mapping of `limit` bytes: only the pages written cost memory, and closing it
    # gives them back to the system at once (freed heap blocks of a refused 60 MiB body would
    # stay in the process's RSS). A growing bytearray would also briefly hold two copies.
    buffer = mmap.mmap(-1, max(limit, 1))
    raw_total = 0

    def take(piece: bytes) -> None:
        if buffer.tell() + len(piece) > limit:
            raise BodyTooLarge(what, f"a body within {limit} bytes (got more)")
        buffer.write(piece)

    try:
        async for raw in response.aiter_raw(RAW_CHUNK):
            raw_total += len(raw)
            if raw_total > limit:
                raise BodyTooLarge(what, f"a body within {limit} bytes (got more on the wire)")
            if inflater is None:
                take(raw)
                continue
            data = raw
            while data:
                take(inflater.decompress(data, INFLATE_STEP))
                data = inflater.unconsumed_tail
                if data:
                    await asyncio.sleep(0)  # let the loop breathe between steps
        if inflater is not None:
            take(inflater.flush())
        return buffer[: buffer.tell()]
    except zlib.error as exc:
        raise BodyTooLarge(what, f"a readable compressed body ({exc})") from None
    finally:
        buffer.close()


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
        # Public so a cluster node can share the limit among live nodes (set_rate, issue 19).
        self.limiter = RateLimiter(requests_per_second, clock)
        self._sender = ResilientSender(
            upstream,
            retry=retry,
            breaker=self.breaker,
            limiter=self.limiter,
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

    def _build(self) -> httpx.AsyncClient:
        import httpx

        client = httpx.AsyncClient(
            base_url=self.base_url,
            follow_redirects=False,
            timeout=httpx.Timeout(self._timeouts.attempt, connect=self._timeouts.connect),
            limits=httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            ),
            **self._client_options,
        )
        client.headers["Accept-Encoding"] = ACCEPT_ENCODING
        return client

    async def _ready(self) -> httpx.AsyncClient:
        """The client, built on first use in a thread: loading the CA bundle takes 50-250 ms of
        CPU, which would otherwise stall the event loop (and every `ping`) at the first request."""
        if self._client is None:
            client = await asyncio.to_thread(self._build)
            if self._client is None:
                self._client = client
            else:  # built meanwhile by a concurrent first request
                await client.aclose()
        return self._client

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._build()
        return self._client

    async def _send_capped(self, request: httpx.Request, limit: int) -> httpx.Response:
        """Send `request` and read its body under `limit` decoded bytes (read_capped); the
        answer carries the decoded body and no Content-Encoding. Call it inside an attempt, so
        the attempt timeout also bounds a body that trickles in forever."""
        import httpx

        what = f"{request.method} {request.url.copy_with(query=None)}"
        response = await self._http.send(request, stream=True)
        try:
            body = await read_capped(response, limit, what)
        finally:
            await response.aclose()
        # The raw bytes, not the decoded strings: httpx encodes str header values as ASCII, so a
        # non-ASCII one (Addic7ed's `Content-Disposition: filename="….Català….srt"`) raised
        # UnicodeEncodeError here and failed every download of that subtitle.
        headers = [
            (k, v)
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in _DROPPED_HEADERS
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=body,
            request=request,
            extensions={"http_version": response.extensions.get("http_version", b"HTTP/1.1")},
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
