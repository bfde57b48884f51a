"""The embedded PostgreSQL used when no DSN is configured: the server binaries of the pgserver package,
a data directory under the state directory, and a Unix socket only (no TCP port to collide on).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)
# Postgres refuses to run as root; under root (a developer's container, CI) it runs as this user.
ROOT_FALLBACK_USER = "pgserver"
SOCKET_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes, including ".s.PGSQL.5432"


class EmbeddedPostgresError(RuntimeError):
    pass


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
        # The server user must traverse to its directories; give it only what it needs.
        for parent in [self.root, *self.root.parents]:
            parent.chmod(parent.stat().st_mode | 0o011) if parent != self.root else None
        for path in (self.root, self.data, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, self._user.pw_uid, self._user.pw_gid)
        self.data.chmod(0o700)

    def _choose_socket_dir(self) -> None:
        if len(str(self.socket_dir / ".s.PGSQL.5432")) <= SOCKET_PATH_MAX:
            return
        short = Path(tempfile.mkdtemp(prefix="aj-pg-"))
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
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
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
            self.socket_dir = adopted
            log.warning(
                "adopted an embedded database left running by an earlier daemon",
                data=str(self.data),
            )
        else:
            self._choose_socket_dir()
            options = f"-h '' -k {self.socket_dir} -c max_connections=60 -c shared_buffers=32MB"
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
        self._started_by_us = True
        return self.dsn

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
