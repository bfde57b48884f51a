"""The embedded PostgreSQL used when no DSN is configured: the server binaries of the pgserver package,
a data directory under the state directory, and a Unix socket only (no TCP port to collide on).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)
# Postgres refuses to run as root; under root (a developer's container, CI) it runs as this user.
ROOT_FALLBACK_USER = "pgserver"
SOCKET_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes, including ".s.PGSQL.5432"
# Only the server's user (and root) may reach the socket: the server trusts local connections,
# so the socket and its directory are the access control (spec-independent: our own choice).
PRIVATE_DIR_MODE = 0o700
SERVER_OPTIONS = (
    "-h '' -c max_connections=60 -c shared_buffers=32MB -c unix_socket_permissions=0700"
)


class EmbeddedPostgresError(RuntimeError):
    pass


def _groups_of(user: str) -> list[grp.struct_group]:
    return [g for g in grp.getgrall() if user in g.gr_mem]


def _bin_dir() -> Path:
    import warnings

    with warnings.catch_warnings():
        # pgserver's package import probes XDG_RUNTIME_DIR, which a system service may lack.
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH  # the binaries the pgserver wheel ships

    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """initdb on first use, pg_ctl start/stop; reuses a server a killed daemon left running."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "postgres"
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self.socket_dir = self.root / "run"
        self._user: pwd.struct_passwd | None = None
        self._started_by_us = False

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        cmd = [str(_bin_dir() / tool), *args]
        kwargs: dict[str, object] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        try:
            done = subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd="/",
                **kwargs,  # type: ignore[call-overload]
            )
        except subprocess.CalledProcessError as exc:
            tail = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise EmbeddedPostgresError(
                f"{tool} failed ({exc.returncode}): {exc.stderr.strip() or exc.stdout.strip()} {tail}"
            ) from exc
        return str(done.stdout)

    def _make_private_dirs(self) -> None:
        """Create root, data and run directories as 0700, owned by the server's user. Only these,
        which are ours, are ever chmod/chown'ed; an ancestor is never changed."""
        for path in (self.root, self.data, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if self._user is not None:
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
            path.chmod(PRIVATE_DIR_MODE)

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            self._user = pwd.getpwnam(ROOT_FALLBACK_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", ROOT_FALLBACK_USER],
                check=True,
                capture_output=True,
            )
            self._user = pwd.getpwnam(ROOT_FALLBACK_USER)
        self._check_reachable(self.root.parent)

    def _check_reachable(self, directory: Path) -> None:
        """The server's user must be able to search every existing ancestor of its directories;
        one it cannot is reported (PermissionError naming it), not chmod'ed: it is not ours."""
        assert self._user is not None
        groups = {self._user.pw_gid, *(g.gr_gid for g in _groups_of(self._user.pw_name))}
        for parent in [directory, *directory.parents]:
            try:
                st = parent.stat()
            except FileNotFoundError:
                continue  # created below by mkdir, with the default (searchable) mode
            if st.st_uid == self._user.pw_uid:
                ok = bool(st.st_mode & stat.S_IXUSR)
            elif st.st_gid in groups:
                ok = bool(st.st_mode & stat.S_IXGRP)
            else:
                ok = bool(st.st_mode & stat.S_IXOTH)
            if not ok:
                raise PermissionError(
                    errno.EACCES,
                    f"the embedded database runs as user {ROOT_FALLBACK_USER!r} (PostgreSQL "
                    "refuses root) and cannot search this directory to reach its data; give it "
                    "search permission (chmod o+x), choose another [state] dir, or set "
                    "[database] dsn",
                    str(parent),
                )

    def _choose_socket_dir(self) -> None:
        if len(str(self.socket_dir / ".s.PGSQL.5432")) <= SOCKET_PATH_MAX:
            return
        short = Path(tempfile.mkdtemp(prefix="aj-pg-"))  # 0700 already
        if self._user is not None:
            os.chown(short, self._user.pw_uid, self._user.pw_gid)
        self.socket_dir = short

    def _running_socket_dir(self) -> Path | None:
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return None
        lines = pidfile.read_text().splitlines()
        try:
            os.kill(int(lines[0]), 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return None
        return Path(lines[4]) if len(lines) > 4 and lines[4] else None

    def start(self) -> str:
        """Start (or adopt) the server; return an asyncpg DSN. Blocking: call it in a thread."""
        self._prepare_user()
        self._make_private_dirs()
        if not (self.data / "PG_VERSION").exists():
            log.info("initialising the embedded database", data=str(self.data))
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        adopted = self._running_socket_dir()
        if adopted is not None:
            # Another daemon may still be using it: it becomes ours (stopped by stop()) only
            # once we hold the instance lock, i.e. once that daemon is known to be gone.
            self.socket_dir = adopted
            self._started_by_us = False
            self._close_adopted_socket()
            log.warning(
                "found an embedded database already running; using it",
                data=str(self.data),
            )
            return self.dsn
        self._choose_socket_dir()
        options = f"{SERVER_OPTIONS} -k {self.socket_dir}"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
            "-o", options, "start",
        )  # fmt: skip
        self._started_by_us = True
        return self.dsn

    def own(self) -> None:
        """This daemon holds the instance lock: an adopted server is now its to stop."""
        self._started_by_us = True

    def _close_adopted_socket(self) -> None:
        # A server started by an older release listened on a 0777 socket in a 0755 directory.
        if self.socket_dir == self.socket_dir_default or self.socket_dir.name.startswith("aj-pg-"):
            self.socket_dir.chmod(PRIVATE_DIR_MODE)

    @property
    def socket_dir_default(self) -> Path:
        return self.root / "run"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def stop(self) -> None:
        if not self._started_by_us:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        except EmbeddedPostgresError as exc:
            log.error("could not stop the embedded database", error=str(exc))
        self._started_by_us = False
        if self.socket_dir.name.startswith("aj-pg-"):
            shutil.rmtree(self.socket_dir, ignore_errors=True)
