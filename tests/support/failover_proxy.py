"""A stand-in for one PostgreSQL host of a failover pair: a TCP proxy on loopback in front of the
real server that can "demote" itself, cutting every connection through it and making every new
session read-only (it adds `-c default_transaction_read_only=on` to the startup message's
options, which the server reports back, as a standby reports itself to a client asking for
target_session_attrs=read-write). Two of them in front of one server play an old and a new
primary; the data is the same because it is one server: replication is not simulated.

The client must not ask for TLS (sslmode=disable in the DSN): the startup message is rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

PROTOCOL_3 = 196608


class FailoverProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.read_only = False
        self.accepted = 0  # sessions opened through this host (read-write ones only)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = await reader.readexactly(8)
            length, code = struct.unpack("!ii", header)
            body = await reader.readexactly(length - 8)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if code == PROTOCOL_3 and self.read_only:
            pairs = body[:-1]  # key\0value\0... then the closing \0
            pairs += b"options\0-c default_transaction_read_only=on\0"
            body = pairs + b"\0"
        elif code == PROTOCOL_3:
            self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        up_writer.write(struct.pack("!ii", len(body) + 8, code) + body)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def demote(self) -> None:
        """The primary turns read-only (or stops and comes back as a standby): every session
        through it ends now, and new ones are read-only."""
        self.read_only = True
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
