"""sd_notify over $NOTIFY_SOCKET without a dependency: READY, STATUS, WATCHDOG, STOPPING, EXTEND_TIMEOUT."""

from __future__ import annotations

import asyncio
import os
import socket

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends datagrams to systemd; a no-op when not started by systemd (no NOTIFY_SOCKET)."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address:
            # A leading "@" names an abstract socket (Linux): the kernel wants a NUL byte there.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block the event loop: a reader that stops draining (a full queue of 10
            # datagrams by default) must cost a dropped STATUS line, not a frozen daemon.
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
            return True
        except BlockingIOError:
            log.debug("sd_notify dropped: the notify socket's queue is full", fields=fields)
            return False
        except OSError as exc:
            log.warning("sd_notify failed", error=str(exc))
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def extend_timeout(self, seconds: float) -> bool:
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC in seconds, when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.01)
    except ValueError:
        return None


async def watchdog_loop(notifier: Notifier, interval: float) -> None:
    """Ping from the event loop itself, so a blocked loop is what trips the watchdog."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
