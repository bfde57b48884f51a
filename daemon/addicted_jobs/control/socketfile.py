"""The control socket's file: created mode 0660 (bound under a temporary name, then renamed into
place), a stale file of a dead daemon replaced, a live one never taken over. A flock on
`<socket>.lock`, held while the server runs, decides which daemon owns the path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
from pathlib import Path

import structlog

from addicted_jobs.settings import ConfigError

log = structlog.get_logger("addicted_jobs.control")
SOCKET_MODE = 0o660
MAX_PATH = 107  # sun_path holds 108 bytes including the terminating NUL


class ControlSocketError(RuntimeError):
    """The socket cannot be opened; the message names the path and what to do."""


class SocketFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None
        self._inode: int | None = None

    def lock(self) -> None:
        """Own the path for as long as this process lives (the kernel drops a dead one's lock)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ControlSocketError(
                f"{self.path} belongs to another running daemon (it holds {lock_path}); "
                "stop it first or set a different [control] socket"
            ) from None
        self._lock_fd = fd

    def clear_stale(self) -> None:
        """Remove a socket nobody listens on; refuse a live one or a file that is not a socket."""
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(
                f"{self.path} exists and is not a socket; remove it or choose another [control] socket"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError:  # nobody listens: a dead daemon's leftover
            log.info("replacing a stale control socket", socket=str(self.path))
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise ControlSocketError(f"{self.path} is served by another live process; not taking it")

    def bind(self) -> socket.socket:
        """A listening socket at the path, mode 0660 from the first moment it is visible."""
        if len(os.fsencode(self.path)) > MAX_PATH:
            raise ConfigError(
                f"[control] socket path is {len(os.fsencode(self.path))} bytes; Unix sockets "
                f"allow at most {MAX_PATH}: {self.path}"
            )
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(temporary))
            os.chmod(temporary, SOCKET_MODE)
            sock.listen(512)
            os.rename(temporary, self.path)  # atomic: the path never shows a wrong mode
        except OSError as exc:
            sock.close()
            temporary.unlink(missing_ok=True)
            raise ControlSocketError(
                f"cannot create the control socket {self.path}: {exc}"
            ) from exc
        self._inode = self.path.stat().st_ino
        sock.setblocking(False)
        return sock

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove(self) -> None:
        """Unlink the socket, unless another daemon has put its own there since."""
        with contextlib.suppress(OSError):
            if self._inode is not None and self.path.stat().st_ino == self._inode:
                self.path.unlink()
