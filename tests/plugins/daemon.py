"""Acceptance rig: the daemon as a subprocess with a temporary config and state directory, a fake
NOTIFY_SOCKET that records sd_notify datagrams, real signals, and its logs as parsed JSON lines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reachable_tmp(tmp_path: Path) -> Iterator[Path]:
    """A temporary directory the embedded database's user can reach. Under root that server
    runs as another user, and the daemon never changes a directory it did not create; pytest's
    own (/tmp/pytest-of-root, 0700, reset by every pytest session) is out of its reach, so
    under root this is a fresh 0711 directory under /tmp, removed afterwards."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="aj-test-", dir="/tmp"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class DaemonProcess:
    def __init__(
        self, workdir: Path, config: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = workdir / "state"
        self.socket_path = workdir / "control.sock"
        self.config: dict[str, Any] = {
            "state": {"dir": str(self.state_dir)},
            "control": {"socket": str(self.socket_path)},
            "log": {"format": "json", "level": "info"},
            "shutdown": {"grace_seconds": 5.0},
        }
        for section, values in (config or {}).items():
            if isinstance(values, dict):
                self.config.setdefault(section, {}).update(values)
            else:
                self.config[section] = values
        self.config_path = workdir / "config.toml"
        self.log_path = workdir / "daemon.log"
        self.extra_env = env or {}
        self.prefix: list[str] = []  # a wrapper command (unshare ...) before the interpreter
        self.notify_path = workdir / "notify.sock"
        self.notifications: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._notify: socket.socket | None = None
        self._log_file: Any = None

    def write_config(self) -> None:
        self.config_path.write_bytes(tomli_w.dumps(self.config).encode())

    def start(self, *, watchdog_usec: int | None = None, output: Any = None) -> DaemonProcess:
        """Start `run`; its stdout and stderr go to the log file, or to `output` (a Popen
        stdout, e.g. subprocess.PIPE) when given."""
        self.write_config()
        if self._notify is None:
            if self.notify_path.exists():
                self.notify_path.unlink()
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(str(self.notify_path))
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **self.extra_env}
        env.pop("JOURNAL_STREAM", None)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self._log_file = self.log_path.open("ab") if output is None else None
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "addicted_jobs",
                "run",
                "--config",
                str(self.config_path),
            ],
            cwd=self.workdir,
            env=env,
            stdout=self._log_file if output is None else output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def _drain_notify(self, timeout: float) -> bool:
        """Read one datagram, waiting up to `timeout` s (0: only one already queued); False when
        none came."""
        assert self._notify is not None
        self._notify.settimeout(timeout)
        try:
            data = self._notify.recv(65536)
        except (TimeoutError, BlockingIOError):
            return False
        self.notifications.extend(data.decode().splitlines())
        return True

    def wait_for_notify(self, field: str, timeout: float = 60.0) -> None:
        """Wait for a datagram line (e.g. READY=1); fail early if the daemon exits instead."""
        deadline = time.monotonic() + timeout
        start = len(self.notifications)
        while not any(
            line == field or line.startswith(field) for line in self.notifications[start:]
        ):
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode} before {field}:\n{self.log_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {field} within {timeout} s:\n{self.log_text()[-3000:]}")
            self._drain_notify(0.1)

    def wait_ready(self, timeout: float = 60.0) -> DaemonProcess:
        self.wait_for_notify("READY=1", timeout)
        return self

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        # The process is gone, so every datagram it sent is queued: read them all, not one (the
        # last ones, STOPPING=1 among them, sat behind a queue of STATUS= lines under load).
        while self._drain_notify(0.0):
            pass
        return code

    def stop(self, timeout: float = 60.0) -> int:
        self.send(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.wait_exit(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def wait_for_log(self, event: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.log_events():
                if entry.get("event") == event and all(
                    entry.get(k) == v for k, v in fields.items()
                ):
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no log event {event!r} {fields} within {timeout} s:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.05)

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "addicted_jobs", *args, "--socket", str(self.socket_path)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._log_file is not None:
            self._log_file.close()
        if self._notify is not None:
            self._notify.close()
            self._notify = None


@pytest.fixture
def daemon_factory(reachable_tmp: Path) -> Iterator[Any]:
    """Build daemons in a temporary directory; every one still running at the end is killed."""
    made: list[DaemonProcess] = []

    def factory(
        name: str = "daemon",
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> DaemonProcess:
        process = DaemonProcess(reachable_tmp / name, config, env)
        made.append(process)
        return process

    yield factory
    for process in made:
        process.close()


def postgres_processes(data_dir: Path) -> list[int]:
    """PIDs of postgres servers whose command line names `data_dir` (stray-process checks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmdline
            and cmdline[0].endswith(b"postgres")
            and str(data_dir).encode() in b" ".join(cmdline)
        ):
            found.append(int(entry.name))
    return found


def signal_name(sig: int) -> str:
    return signal.Signals(sig).name
