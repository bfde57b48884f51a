"""A TCP proxy on loopback in front of PostgreSQL that can turn the connections passing through
it into black holes: bytes stop flowing both ways while both sockets stay open, as behind a NAT
or firewall that forgot the connection. New connections are forwarded normally."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest


class HalfOpenProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._forward_left: int | None = None  # None: forward every new connection
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._forward_left is not None:
            if self._forward_left == 0:
                self._held.append(writer)  # never reaches the server, never answered
                return
            self._forward_left -= 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        link = _Link(writer, up_writer)
        self._links.append(link)
        link.tasks = [
            asyncio.create_task(link.pipe(reader, up_writer)),
            asyncio.create_task(link.pipe(up_reader, writer)),
        ]

    def blackhole(self) -> None:
        """Every connection open now stops forwarding, silently; its sockets stay open."""
        for link in self._links:
            link.silent = True

    def blackhole_port(self, port: int) -> bool:
        """Silence the one connection that reaches the server from local port `port` (the
        server's pg_stat_activity.client_port for it); False when none of ours does."""
        found = False
        for link in self._links:
            if link.upstream.get_extra_info("sockname")[1] == port:
                link.silent = found = True
        return found

    def forward_only(self, count: int) -> None:
        """Forward the next `count` new connections; every later one is accepted and held open
        without reaching the server, so its client waits for an answer that never comes."""
        self._forward_left = count

    def refuse_new(self) -> None:
        """Stop accepting connections; the open ones go on as they are."""
        if self._server is not None:
            self._server.close()

    def drop_replies(self) -> None:
        """Every connection open now still delivers to the server but swallows its answers: a
        statement runs (and commits) while its client hears nothing."""
        for link in self._links:
            link.replies_silent = True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            for task in link.tasks:
                task.cancel()
            for w in (link.client, link.upstream):
                w.close()
        for held in self._held:
            held.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


class _Link:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client, self.upstream = client, upstream
        self.silent = False
        self.replies_silent = False
        self.tasks: list[asyncio.Task[None]] = []

    async def pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await source.read(65536):
                if self.silent or (self.replies_silent and sink is self.client):
                    continue  # swallowed: the other side hears nothing, and no close either
                sink.write(data)
                await sink.drain()
            if not self.silent:
                sink.close()


@pytest.fixture
async def proxy(db_dsn: str) -> AsyncIterator[HalfOpenProxy]:
    """A running HalfOpenProxy in front of the test database (a pytest plugin, tests/conftest.py)."""
    target = urlsplit(db_dsn)
    if target.hostname is None or target.port is None:
        pytest.skip("the test database is not reached over TCP; the proxy needs host and port")
    running = HalfOpenProxy(target.hostname, target.port)
    await running.start()
    yield running
    await running.close()
