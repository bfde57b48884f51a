"""sd_notify datagrams reach a NOTIFY_SOCKET, including an abstract one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from addicted_jobs.systemd import Notifier, watchdog_interval


def test_ready_status_watchdog_and_stopping_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(2)
        notifier = Notifier(str(path))
        assert (
            notifier.ready("up")
            and notifier.watchdog()
            and notifier.stopping()
            and notifier.extend_timeout(1.5)
        )
        got = [receiver.recv(1024).decode() for _ in range(4)]
        notifier.close()
    assert got == ["READY=1\nSTATUS=up", "WATCHDOG=1", "STOPPING=1", "EXTEND_TIMEOUT_USEC=1500000"]


def test_abstract_socket_addresses_work() -> None:
    name = f"aj-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(2)
        notifier = Notifier("@" + name)
        notifier.status("hello")
        assert receiver.recv(1024) == b"STATUS=hello"
        notifier.close()


def test_without_systemd_everything_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and not notifier.ready()


def test_watchdog_interval_is_half_the_timeout_and_only_for_us(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None
