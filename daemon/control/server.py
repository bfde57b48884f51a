"""The control socket server: a Unix stream socket speaking protocol v1, one task per connection.

Requests are size-limited; a partial line that stalls times out; a silent connection costs
nothing; peer uid/pid (SO_PEERCRED) are logged with every state-changing command. The socket
file itself (mode, stale and live sockets) is socketfile.py's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from daemon.control.protocol import (
    OpError,
    describe_errors,
    encode_error,
    encode_ok,
    parse_request,
    request_id_of,
    summarise,
)
from daemon.control.socketfile import SOCKET_MODE, ControlSocketError, SocketFile
from daemon.db import UNREACHABLE

log = structlog.get_logger("daemon.control")
CHUNK = 256 * 1024
SECRET_HINTS = ("pass", "secret", "token")


@dataclass(frozen=True)
class Peer:
    pid: int | None
    uid: int | None
    gid: int | None


OpHandler = Callable[[dict[str, Any], Peer], Awaitable[dict[str, Any]]]


def peer_of(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        return Peer(pid, uid, gid)
    except (AttributeError, OSError):  # not Linux, or not a Unix socket
        return Peer(None, None, None)


def _summary(args: dict[str, Any]) -> dict[str, Any]:
    # What a state change was about, for the audit line; never blobs, never secrets.
    out: dict[str, Any] = {}
    for key, value in list(args.items())[:8]:
        if any(h in key.lower() for h in SECRET_HINTS):
            out[key] = "<redacted>"
        elif isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 80):
            out[key] = value
        elif isinstance(value, list):
            out[key] = f"<{len(value)} items>"
    return out


class ControlServer:
    def __init__(
        self,
        path: Path,
        handlers: dict[str, OpHandler],
        *,
        extra: dict[str, OpHandler] | None = None,
        read_only: Iterable[str] = (),
        max_request_bytes: int = 16 * 1024 * 1024 + 4096,
        idle_timeout_s: float = 30.0,
        request_timeout_s: float = 30.0,
        max_connections: int = 256,
    ) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self.read_only = set(read_only)
        for op, handler in (extra or {}).items():
            self.register(op, handler, read_only=op in self.read_only)
        self.max_request_bytes = max_request_bytes
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._file = SocketFile(path)
        self._idle: set[asyncio.Task[Any]] = set()
        self._busy: set[asyncio.Task[Any]] = set()
        self.connections = 0

    def register(self, op: str, handler: OpHandler, *, read_only: bool = False) -> None:
        """Add an operation (the domain's commands); read-only ones are not audit-logged."""
        if op in self.handlers:
            raise ValueError(f"control operation {op!r} is registered twice")
        self.handlers[op] = handler
        if read_only:
            self.read_only.add(op)

    async def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlSocketError(f"cannot create {self.path.parent}: {exc}") from exc
        self._file.lock()
        try:
            self._file.clear_stale()
            sock = self._file.bind()
            self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        except BaseException:
            self._file.release()
            raise
        log.info("control socket open", socket=str(self.path), mode=oct(SOCKET_MODE))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, drop idle connections, let requests in progress finish within `grace`."""
        if self._server is None:
            return
        self._server.close()
        self._file.remove()
        for task in list(self._idle):
            task.cancel()
        if self._busy:
            await asyncio.wait(list(self._busy), timeout=grace)
        for task in list(self._busy | self._idle):
            task.cancel()
        pending = list(self._busy | self._idle)
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        self._server = None
        self._file.release()
        log.info("control socket closed", socket=str(self.path))

    # ---- connections --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._idle.add(task)
        self.connections += 1
        peer = peer_of(writer)
        try:
            if self.connections > self.max_connections:
                error = OpError(
                    "unavailable", f"too many control connections (limit {self.max_connections})"
                )
                writer.write(encode_error(None, error))
                await self._drain(writer)
                return
            await self._conversation(reader, writer, peer, task)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("control connection dropped", peer_pid=peer.pid, reason=type(exc).__name__)
        except asyncio.CancelledError:
            # stop() cancels connections: ending quietly keeps asyncio's stream callback from
            # logging the cancellation as an error (priority 3) while `top` is connected.
            pass
        finally:
            self.connections -= 1
            self._idle.discard(task)
            self._busy.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _conversation(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        task: asyncio.Task[Any],
    ) -> None:
        buffer = bytearray()
        scanned = 0
        while True:
            newline = buffer.find(b"\n", scanned)
            if newline < 0:
                scanned = len(buffer)
                if len(buffer) > self.max_request_bytes:
                    await self._too_large(writer, peer)
                    return
                # Waiting for a first byte costs nothing; a started line must finish in time.
                timeout = self.idle_timeout_s if buffer else None
                try:
                    async with asyncio.timeout(timeout):
                        chunk = await reader.read(CHUNK)
                except TimeoutError:
                    log.info(
                        "control connection timed out in the middle of a request",
                        peer_pid=peer.pid,
                        peer_uid=peer.uid,
                        pending_bytes=len(buffer),
                    )
                    return
                if not chunk:
                    return
                buffer += chunk
                continue
            if newline > self.max_request_bytes:
                await self._too_large(writer, peer)
                return
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            scanned = 0
            self._idle.discard(task)
            self._busy.add(task)
            try:
                reply = await self.handle_line(line, peer)
            finally:
                self._busy.discard(task)
                self._idle.add(task)
            writer.write(reply)
            await self._drain(writer)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self.idle_timeout_s):  # a client that never reads
            await writer.drain()

    async def _too_large(self, writer: asyncio.StreamWriter, peer: Peer) -> None:
        log.warning(
            "control request too large; closing the connection",
            peer_pid=peer.pid,
            peer_uid=peer.uid,
            limit=self.max_request_bytes,
        )
        error = OpError(
            "bad_request",
            f"request line longer than {self.max_request_bytes} bytes "
            "([control] max_request_bytes); send smaller batches",
        )
        writer.write(encode_error(None, error))
        await self._drain(writer)

    async def handle_line(self, line: bytes, peer: Peer) -> bytes:
        """Serve one request line; never raises (every failure becomes an error reply)."""
        started = time.monotonic()
        op: str | None = None
        request_id = None
        args: dict[str, Any] = {}
        try:
            request = parse_request(line)
            op, request_id, args = request.op, request.id, request.args
            handler = self.handlers.get(op)
            if handler is None:
                known = ", ".join(sorted(self.handlers))
                raise OpError("unknown_op", f"no operation {op!r}; known operations: {known}")
            async with asyncio.timeout(self.request_timeout_s):
                result = await handler(args, peer)
            reply = encode_ok(request_id, result)
            error: OpError | None = None
        except OpError as exc:
            error = exc
        except ValidationError as exc:  # a handler that validated without parse_args
            details = describe_errors(exc)
            error = OpError("invalid_args", f"invalid arguments: {summarise(details)}", details)
        except TimeoutError:
            error = OpError(
                "unavailable", f"{op!r} did not finish within {self.request_timeout_s:g} s"
            )
        except UNREACHABLE as exc:
            error = OpError(
                "unavailable", f"the database is unavailable: {type(exc).__name__}: {exc}"
            )
        except Exception as exc:
            log.exception("control operation failed unexpectedly", op=op, peer_pid=peer.pid)
            error = OpError("internal", f"internal error in {op!r}: {type(exc).__name__}: {exc}")
        if error is not None:
            if request_id is None:
                request_id = request_id_of(line)
            reply = encode_error(request_id, error)
        if op is not None and op in self.handlers and op not in self.read_only:
            log.info(
                "control command",
                op=op,
                peer_uid=peer.uid,
                peer_pid=peer.pid,
                ok=error is None,
                error=error.code if error else None,
                duration_ms=round((time.monotonic() - started) * 1000, 2),
                **{f"arg_{k}": v for k, v in _summary(args).items()},
            )
        return reply
