"""The `[metrics] listen` HTTP endpoint, served on the daemon's event loop.

prometheus_client's own server starts a thread per connection and never times a connection out:
any local user could open thousands of idle connections to the loopback port and have the daemon
hold as many threads (1,500 connections: 1,508 threads, +40 MiB). Here a connection costs no
thread, waits at most READ_TIMEOUT_S for its request, and at most MAX_CONNECTIONS are open at
once: a new one closes the oldest still waiting for its request, so a scraper always gets in.
Every path answers the metrics, as prometheus_client's did.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import structlog
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = structlog.get_logger("addicted_jobs.metrics")
MAX_CONNECTIONS = 64
READ_TIMEOUT_S = 5.0
MAX_HEAD_BYTES = 8192  # a scraper's request line and headers fit many times over


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port`, bound now so a taken address is an OSError at
    start-up (exit 78), as before."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class MetricsEndpoint:
    """Answers `GET <any path>` with `render()`; `HEAD` with its headers; anything else 405."""

    def __init__(self, render: Callable[[], bytes]) -> None:
        self.render = render
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # insertion order: oldest first
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD_BYTES)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._waiting) >= MAX_CONNECTIONS:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.transport.abort()  # its readuntil() ends; that task closes it
        self._waiting[writer] = None
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            self._waiting.pop(writer, None)
            method = head.split(b" ", 1)[0]
            if method in (b"GET", b"HEAD"):
                body = self.render()
                status = b"200 OK"
                headers = b"Content-Type: " + CONTENT_TYPE_LATEST.encode() + b"\r\n"
            else:
                body, status, headers = b"GET or HEAD only\n", b"405 Method Not Allowed", b""
            writer.write(
                b"HTTP/1.1 " + status + b"\r\n" + headers
                + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                + (b"" if method == b"HEAD" else body)
            )  # fmt: skip
            async with asyncio.timeout(READ_TIMEOUT_S):
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # silent, slow or oversized: closed, nothing answered
        except ConnectionError:
            pass
        finally:
            self._waiting.pop(writer, None)
            writer.close()
