"""The command line finds the daemon's socket by the same rules as the daemon's settings
(addicted_jobs.paths), without loading them: every combination of file, environment and systemd
directories gives the path the daemon listens on."""

from __future__ import annotations

from pathlib import Path

import pytest

from addicted_jobs.paths import Unresolved, daemon_socket
from addicted_jobs.settings import load_settings

CASES = [
    ({}, {}),
    ({"control": {"socket": "/run/x/c.sock"}}, {}),
    ({"state": {"dir": "/var/lib/aj"}}, {}),
    ({"state": {"dir": "/var/lib/aj"}}, {"RUNTIME_DIRECTORY": "/run/aj:/run/other"}),
    ({"state": {"dir": "/var/lib/aj"}}, {"ADDICTED_JOBS_STATE__DIR": "/srv/aj"}),
    ({"control": {"socket": "/run/x/c.sock"}}, {"ADDICTED_JOBS_CONTROL__SOCKET": "/tmp/e.sock"}),
    ({}, {"STATE_DIRECTORY": "/var/lib/addicted-jobs"}),
    ({"control": {"max_request_bytes": 4096}}, {"RUNTIME_DIRECTORY": "/run/aj"}),
    # pydantic-settings matches names in any case and (env_ignore_empty) skips empty values.
    ({"control": {"socket": "/run/x/c.sock"}}, {"addicted_jobs_control__socket": "/tmp/l.sock"}),
    ({"state": {"dir": "/var/lib/aj"}}, {"Addicted_Jobs_State__Dir": "/srv/mixed"}),
    ({"control": {"socket": "/run/x/c.sock"}}, {"ADDICTED_JOBS_CONTROL__SOCKET": ""}),
    ({"state": {"dir": "/var/lib/aj"}}, {"ADDICTED_JOBS_STATE__DIR": ""}),
]


@pytest.mark.parametrize(("data", "env"), CASES)
def test_the_light_rules_agree_with_the_settings(
    data: dict[str, dict[str, object]],
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RUNTIME_DIRECTORY", "STATE_DIRECTORY", "ADDICTED_JOBS_STATE__DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ADDICTED_JOBS_CONTROL__SOCKET", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "config.toml"
    lines = [
        f"[{section}]\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
        for section, values in data.items()
    ]
    config.write_text("".join(lines).replace("'", '"'), encoding="utf-8")

    assert Path(daemon_socket(config)) == load_settings(config).socket_path


@pytest.mark.parametrize(
    "text", ["[control\n", "[control]\nsocket = 12\n", "state = 3\n", "[state]\ndir = ''\n"]
)
def test_what_the_light_rules_cannot_tell_goes_to_the_settings(text: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(Unresolved):
        daemon_socket(config)
