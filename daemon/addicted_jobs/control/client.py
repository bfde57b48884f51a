"""The control socket client: one connection, requests answered in order, errors as exceptions.

DaemonError carries the daemon's error code and message (the CLI exits 1); Unreachable means
no daemon answered on the socket (the CLI exits 3).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
from types import TracebackType
from typing import TYPE_CHECKING, Any

from addicted_jobs.control.wire import BadReply, decode_reply, encode_request

if TYPE_CHECKING:
    # str or os.PathLike: paths stay strings where they can, pathlib costs the command line
    # ~4 ms of start-up (issue 16).
    from _typeshed import StrPath

REPLY_LIMIT = 1 << 30  # a reply may carry a large job (a subtitle blob) or a long list


def _not_a_socket(path: StrPath) -> bool:
    try:
        return not stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class DaemonError(Exception):
    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or []


class Unreachable(Exception):
    """No daemon on the socket (missing file, refused, permission, timeout, or hung up)."""


class ControlClient:
    def __init__(self, path: StrPath, timeout: float = 60.0) -> None:
        self.path = path
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def connect(self) -> ControlClient:
        try:
            async with asyncio.timeout(self.timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(
                    os.fspath(self.path), limit=REPLY_LIMIT
                )
        except FileNotFoundError:
            raise Unreachable(
                f"no control socket at {self.path} (is the daemon running?)"
            ) from None
        except PermissionError:
            raise Unreachable(
                f"permission denied on {self.path}: run as the daemon's user or a member of its group"
            ) from None
        except (ConnectionRefusedError, TimeoutError, OSError) as exc:
            if _not_a_socket(self.path):
                raise Unreachable(
                    f"{self.path} is not a socket (give the daemon's control socket, "
                    "`[control] socket` of its config)"
                ) from None
            raise Unreachable(f"cannot connect to {self.path}: {exc}") from None
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self._writer = self._reader = None

    async def __aenter__(self) -> ControlClient:
        return await self.connect()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and wait for its reply; DaemonError when the daemon says no."""
        if self._reader is not None and self._reader.at_eof():
            await self.close()  # the daemon closed it after a silence: open a new one
        if self._writer is None:
            await self.connect()
        assert self._reader is not None and self._writer is not None
        request_id = next(self._ids)
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    self._writer.write(encode_request(op, args or {}, request_id))
                    await self._writer.drain()
                    line = await self._reader.readline()
            except TimeoutError:
                await self.close()
                raise Unreachable(f"no reply from {self.path} within {self.timeout:g} s") from None
            except (ConnectionError, OSError, ValueError) as exc:
                await self.close()
                raise Unreachable(f"connection to {self.path} lost: {exc}") from None
        if not line:
            await self.close()
            raise Unreachable(f"the daemon closed the connection on {self.path}")
        try:
            reply = decode_reply(line)
        except BadReply as exc:
            raise Unreachable(f"the daemon sent an unreadable reply: {exc}") from None
        if not reply.ok:
            raise DaemonError(reply.code, reply.message, reply.details)
        if reply.id != request_id:
            await self.close()
            raise Unreachable(f"reply for request {reply.id!r} while waiting for {request_id}")
        return reply.result


async def call(
    path: StrPath, op: str, args: dict[str, Any] | None = None, timeout: float = 60.0
) -> dict[str, Any]:
    """One request on a fresh connection."""
    async with ControlClient(path, timeout) as client:
        return await client.call(op, args)
