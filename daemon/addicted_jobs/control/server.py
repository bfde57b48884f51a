"""The control socket server: a Unix stream socket speaking protocol v1, one task per connection.

Bounded in every dimension a local client controls: a request line's size; the bytes buffered
across all connections; one large request parsed at a time; the size of a reply; a connection
silent for idle_timeout_s is closed, a request half sent or not; and at the connection limit
the oldest idle connection makes room for the new one. Peer uid/pid (SO_PEERCRED) are logged
with every state-changing command. The socket file (mode, stale and live sockets) is
socketfile.py's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError

from addicted_jobs.control.op import Op, Peer
from addicted_jobs.control.protocol import (
    OpError,
    describe_errors,
    encode_error,
    encode_ok,
    parse_args,
    parse_request,
    request_id_of,
    summarise,
)
from addicted_jobs.control.socketfile import SOCKET_MODE, ControlSocketError, SocketFile
from addicted_jobs.db import UNREACHABLE

log = structlog.get_logger("addicted_jobs.control")
CHUNK = 256 * 1024
# Lines above this are parsed and served one at a time: a 16 MiB batch of jobs becomes ~10x
# that in Python objects while it is validated and inserted.
LARGE_REQUEST_BYTES = 1024 * 1024


def peer_of(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        return Peer(pid, uid, gid)
    except (AttributeError, OSError):  # not Linux, or not a Unix socket
        return Peer(None, None, None)


# An audit line shows only the arguments its Op lists in `audit` (default deny): a new operation
# cannot leak a cookie or a path by being added without thought.
AUDIT_STRING_LIMIT = 80
REDACTED = "<redacted>"


def audit_summary(allowed: frozenset[str], args: dict[str, Any]) -> dict[str, Any]:
    """The audit line's view of `args`: allowed keys only; numbers and booleans as they are,
    short strings as they are, lists as their length, anything else `<redacted>`."""
    out: dict[str, Any] = {}
    for key in sorted(allowed & args.keys()):
        value = args[key]
        if isinstance(value, bool | int | float) or value is None:
            out[key] = value
        elif isinstance(value, str) and len(value) <= AUDIT_STRING_LIMIT:
            out[key] = value
        elif isinstance(value, list | dict):
            out[key] = f"<{len(value)} items>"
        else:
            out[key] = REDACTED
    return out


__all__ = ["ControlServer", "Op", "Peer", "audit_summary", "peer_of"]


class ControlServer:
    """Serves `ops` (engine and domain alike) on a Unix socket at `path`. For every request:
    the envelope is parsed (bad_request), the op looked up (unknown_op), its arguments checked
    against the op's model (invalid_args), the handler run under request_timeout_s, its declared
    domain errors mapped to their codes, and a state-changing op audit-logged. ValueError when
    two ops share a name."""

    def __init__(
        self,
        path: Path,
        ops: Iterable[Op],
        *,
        max_request_bytes: int = 16 * 1024 * 1024 + 4096,
        idle_timeout_s: float = 30.0,
        request_timeout_s: float = 30.0,
        max_connections: int = 256,
        max_buffered_bytes: int = 64 * 1024 * 1024,
        max_reply_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.ops: dict[str, Op] = {}
        for record in ops:
            if record.name in self.ops:
                raise ValueError(f"control operation {record.name!r} is registered twice")
            self.ops[record.name] = record
        self.max_request_bytes = max_request_bytes
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.max_buffered_bytes = max_buffered_bytes
        self.max_reply_bytes = max_reply_bytes
        self._server: asyncio.Server | None = None
        self._file = SocketFile(path)
        # Connections between requests, with when they became idle (oldest first: dict order).
        self._idle: dict[asyncio.Task[Any], float] = {}
        self._busy: set[asyncio.Task[Any]] = set()
        self._writers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._large = asyncio.Semaphore(1)
        self.connections = 0
        self.buffered = 0  # bytes of unfinished request lines held, all connections together
        self.buffered_peak = 0

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
            writer = self._writers.get(task)
            if writer is not None:
                writer.transport.abort()  # its read ends with EOF; a cancel would log an error
            else:
                task.cancel()
        if self._busy:
            await asyncio.wait(list(self._busy), timeout=grace)
        for task in [*self._busy, *self._idle]:
            task.cancel()
        pending = [*self._busy, *self._idle]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        self._server = None
        self._file.release()
        log.info("control socket closed", socket=str(self.path))

    # ---- connections --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._idle[task] = time.monotonic()
        self._writers[task] = writer
        self.connections += 1
        peer = peer_of(writer)
        try:
            if self.connections > self.max_connections and not self._make_room(task):
                error = OpError(
                    "unavailable",
                    f"too many control connections, all busy (limit {self.max_connections})",
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
            self._idle.pop(task, None)
            self._busy.discard(task)
            self._writers.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _make_room(self, newcomer: asyncio.Task[Any]) -> bool:
        """At the limit, drop the connection idle the longest so a new client always gets in;
        False when every other connection is in the middle of a request."""
        for task in self._idle:
            writer = self._writers.get(task)
            if task is not newcomer and writer is not None:
                del self._idle[task]
                # Closing the transport ends its read with EOF: the task finishes as usual (a
                # cancelled connection task would be reported by asyncio as an error).
                writer.transport.abort()
                log.info("control connection limit reached: closed the oldest idle connection")
                return True
        return False

    async def _conversation(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        task: asyncio.Task[Any],
    ) -> None:
        buffer = bytearray()
        try:
            await self._lines(reader, writer, peer, task, buffer)
        finally:
            self.buffered -= len(buffer)

    async def _lines(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: Peer,
        task: asyncio.Task[Any],
        buffer: bytearray,
    ) -> None:
        scanned = 0
        while True:
            newline = buffer.find(b"\n", scanned)
            if newline < 0:
                scanned = len(buffer)
                if len(buffer) > self.max_request_bytes:
                    await self._too_large(writer, peer)
                    return
                if self.buffered > self.max_buffered_bytes:
                    await self._over_budget(writer, peer, len(buffer))
                    return
                try:
                    # Silence ends a connection, between requests as in the middle of one: a
                    # client that holds one open without a word holds a slot and memory.
                    async with asyncio.timeout(self.idle_timeout_s):
                        chunk = await reader.read(CHUNK)
                except TimeoutError:
                    log.log(
                        logging.INFO if buffer else logging.DEBUG,
                        "control connection closed after a silence",
                        peer_pid=peer.pid,
                        peer_uid=peer.uid,
                        pending_bytes=len(buffer),
                        idle_timeout_s=self.idle_timeout_s,
                    )
                    return
                if not chunk:
                    return
                buffer += chunk
                self.buffered += len(chunk)
                self.buffered_peak = max(self.buffered_peak, self.buffered)
                continue
            if newline > self.max_request_bytes:
                await self._too_large(writer, peer)
                return
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            self.buffered -= newline + 1
            scanned = 0
            self._idle.pop(task, None)
            self._busy.add(task)
            try:
                if len(line) > LARGE_REQUEST_BYTES:
                    async with self._large:
                        reply = await self.handle_line(line, peer)
                else:
                    reply = await self.handle_line(line, peer)
                del line
            finally:
                self._busy.discard(task)
                self._idle[task] = time.monotonic()
            writer.write(reply)
            await self._drain(writer)

    async def _over_budget(self, writer: asyncio.StreamWriter, peer: Peer, held: int) -> None:
        log.warning(
            "control requests hold too much memory; closing the connection with the newest bytes",
            peer_pid=peer.pid,
            peer_uid=peer.uid,
            held_bytes=held,
            limit=self.max_buffered_bytes,
        )
        error = OpError(
            "unavailable",
            f"the daemon holds more than {self.max_buffered_bytes} bytes of unfinished requests "
            "from all clients ([control] max_buffered_bytes); retry shortly or send smaller ones",
        )
        writer.write(encode_error(None, error))
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
            record = self.ops.get(op)
            if record is None:
                known = ", ".join(sorted(self.ops))
                raise OpError("unknown_op", f"no operation {op!r}; known operations: {known}")
            parsed = parse_args(record.args, args, op)
            async with asyncio.timeout(self.request_timeout_s):
                result = await self._run(record, parsed, peer)
            reply = encode_ok(request_id, result)
            error: OpError | None = None
        except OpError as exc:
            error = exc
        except ValidationError as exc:  # a model a handler validated itself (a job's arguments)
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
        except asyncpg.exceptions.LockNotAvailableError:
            # A row lock waited on for a client gives up (store.CLIENT_LOCK_TIMEOUT_S, issue 14).
            error = OpError(
                "unavailable",
                f"{op!r}: a job row it needs is locked by another session; nothing was "
                "changed, try again",
            )
        except Exception as exc:
            log.exception("control operation failed unexpectedly", op=op, peer_pid=peer.pid)
            error = OpError("internal", f"internal error in {op!r}: {type(exc).__name__}: {exc}")
        if error is None and len(reply) > self.max_reply_bytes:
            error = OpError(
                "unavailable",
                f"the reply to {op!r} would be {len(reply)} bytes, more than the socket sends in "
                f"one line ({self.max_reply_bytes}, [control] max_reply_bytes); ask for less",
            )
            del reply
        if error is not None:
            if request_id is None:
                request_id = request_id_of(line)
            reply = encode_error(request_id, error)
        record = self.ops.get(op) if op is not None else None
        if record is not None and not record.read_only:
            log.info(
                "control command",
                op=op,
                peer_uid=peer.uid,
                peer_pid=peer.pid,
                ok=error is None,
                error=error.code if error else None,
                duration_ms=round((time.monotonic() - started) * 1000, 2),
                **{f"arg_{k}": v for k, v in audit_summary(record.audit, args).items()},
            )
        return reply

    @staticmethod
    async def _run(record: Op, args: Any, peer: Peer) -> dict[str, Any]:
        """The handler's answer; an exception the op declares in `errors` becomes its OpError."""
        try:
            return await record.handler(args, peer)
        except OpError:
            raise
        except Exception as exc:
            fault = record.fault_of(exc)
            if fault is None:
                raise
            raise OpError(fault.code, f"{fault.prefix}{exc}") from exc
