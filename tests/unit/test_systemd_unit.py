"""The shipped unit file passes `systemd-analyze verify` and keeps the settings operators rely on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "addicted-jobs.service"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs it)")
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    entry = Path(sys.executable).with_name("addicted-jobs")
    unit = tmp_path / "addicted-jobs.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/addicted-jobs", str(entry)))
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_unit_keeps_notify_watchdog_restart_policy_and_hardening() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "RuntimeDirectory=addicted-jobs",
        "StateDirectory=addicted-jobs",
        "ConfigurationDirectory=addicted-jobs",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
    ):
        assert line in text, line
    # The stop timeout must leave room for the grace period (30 s) and the clean-up after it.
    stop = int(text.split("TimeoutStopSec=")[1].split()[0])
    assert stop > 30


def test_reload_waits_for_the_daemons_answer() -> None:
    assert (
        "ExecReload=/usr/bin/addicted-jobs reload --config /etc/addicted-jobs/config.toml"
        in UNIT.read_text()
    )


def test_systemd_files_writes_the_shipped_files_for_this_installation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from addicted_jobs import cli

    target = tmp_path / "out"
    assert cli.main(["systemd-files", str(target), "--bin", "/opt/aj/bin/addicted-jobs"]) == 0
    unit = (target / "addicted-jobs.service").read_text()
    assert "ExecStart=/opt/aj/bin/addicted-jobs run --config" in unit
    assert "ExecReload=/opt/aj/bin/addicted-jobs reload --config" in unit
    assert (target / "addicted-jobs.sysusers.conf").read_text().startswith("# sysusers.d")
    assert "[metrics]" in (target / "config.example.toml").read_text()
    assert "systemctl daemon-reload" in capsys.readouterr().out
    assert cli.main(["systemd-files", str(target)]) == 1  # no silent overwrite
    assert "exists; remove it or pass --force" in capsys.readouterr().err
    assert cli.main(["systemd-files", str(target), "--force"]) == 0


@pytest.mark.parametrize(
    "binary",
    [
        "relative/bin/addicted-jobs",  # systemd: "Executable path is not absolute"
        "/opt/x y/bin/addicted-jobs",  # ExecStart= would run "/opt/x" with "y/bin/..." as argument
        "/opt/%h/bin/addicted-jobs",  # a specifier: systemd expands %h to a home directory
        "/opt/$HOME/bin/addicted-jobs",  # a variable: expanded
        '/opt/"q"/bin/addicted-jobs',
        "/opt/a\\b/addicted-jobs",
        "/opt/a;b/addicted-jobs",
        "/opt/a\tb/addicted-jobs",
    ],
)
def test_systemd_files_refuses_a_bin_the_unit_cannot_name_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], binary: str
) -> None:
    from addicted_jobs import cli

    target = tmp_path / "out"
    assert cli.main(["systemd-files", str(target), "--bin", binary]) == 2
    err = capsys.readouterr().err
    assert "--bin" in err and "Traceback" not in err
    assert not (target / "addicted-jobs.service").exists()


def test_systemd_files_names_a_target_that_is_not_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from addicted_jobs import cli

    (tmp_path / "file").write_text("x")
    assert cli.main(["systemd-files", str(tmp_path / "file"), "--bin", "/opt/aj/aj"]) == 1
    assert "is not a directory" in capsys.readouterr().err  # was "[Errno 17] File exists"
    assert cli.main(["systemd-files", str(tmp_path / "ok"), "--bin", "/opt/ä/addicted-jobs"]) == 0
    assert "install -d -m 0750 -g addicted-jobs /etc/addicted-jobs /etc/addicted-jobs/secrets" in (
        capsys.readouterr().out
    )
