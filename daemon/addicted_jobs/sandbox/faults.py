"""What the sandbox upstream can be told to do wrong, and what it remembers of each request.

Set at run time through `Sandbox.faults`; re-exported by addicted_jobs.sandbox.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass

from aiohttp import web


@dataclass
class FaultConfig:
    """What goes wrong, for requests whose path starts with one of `paths` (all if empty)."""

    error_rate: float = 0.0  # share of requests answered with error_status
    error_status: int = 503
    fail_next: int = 0  # the next N matching requests fail with error_status, whatever the rate
    latency: float = 0.0  # seconds added before answering
    truncate_rate: float = 0.0  # share of HTML pages cut off half-way
    reset_rate: float = 0.0  # share of connections reset without an answer
    reset_next: int = 0  # the next N matching requests get their connection reset
    paths: tuple[str, ...] = ()

    def applies_to(self, path: str) -> bool:
        return not self.paths or path.startswith(self.paths)


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    cookie: str | None
    user_agent: str | None
    referer: str | None


def reset_connection(request: web.Request) -> None:
    # SO_LINGER 0 then abort: the peer sees a TCP reset, not a clean close.
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
