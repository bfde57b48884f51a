"""The command line is a light client: a socket command loads the control client and its wire
format (and the settings only to find the socket), never the domain or the engine (issue 16: `ping` loaded 544 modules in 0.84 s
because the CLI imported renderers from addicted_jobs.tasks; a user notices start-up time).
Each check runs the real command in a fresh interpreter and reads its sys.modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("catalog", "tasks", "storage", "upstream", "jobs", "app", "domain", "importer", "demo")
PROGRAM = """
import json, sys
from addicted_jobs.cli import main
code = main(sys.argv[1:])
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*argv: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """The exit code of `addicted-jobs ARGV` and every module it loaded, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["exit"], result["modules"]


def heavy_in(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if any(m == f"addicted_jobs.{h}" or m.startswith(f"addicted_jobs.{h}.") for h in HEAVY)
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ("ping",),
        ("jobs", "--state", "failed"),
        ("credentials", "list"),
        ("storage", "get", "7"),
        ("request-subtitles", "1", "1", "1", "en"),
        ("top", "--once"),
    ],
)
def test_socket_commands_load_neither_domain_nor_engine(
    argv: tuple[str, ...], tmp_path: Path
) -> None:
    # No daemon listens there: the command runs its whole client path up to the connection.
    code, modules = loaded_by(*argv, "--socket", str(tmp_path / "none.sock"))
    assert code == 3  # unreachable: it did try
    assert heavy_in(modules) == []
    assert "asyncpg" not in modules and "httpx" not in modules
    # With --socket not even the settings (pydantic-settings) nor the server's pydantic models,
    # nor pathlib and datetime (~8 ms together of a command that should cost little more than
    # Python: issue 16's target for `ping`).
    assert "addicted_jobs.settings" not in modules and "pydantic" not in modules
    assert "pathlib" not in modules and "datetime" not in modules


def test_a_socket_named_by_the_environment_needs_no_settings(tmp_path: Path) -> None:
    env = {"ADDICTED_JOBS_CONTROL__SOCKET": str(tmp_path / "none.sock")}
    code, modules = loaded_by("ping", env=env)
    assert code == 3
    assert "addicted_jobs.settings" not in modules and "pydantic" not in modules


def test_the_daemon_itself_is_loaded_only_by_run() -> None:
    # The check can fail: `run --help` parses no further, but a bad config path makes `run`
    # import the daemon, which the socket commands must never do.
    code, modules = loaded_by("run", "--config", "/nonexistent/config.toml")
    assert code == 78
    assert "addicted_jobs.app" in heavy_in(modules)


def test_the_default_socket_is_found_without_the_settings(tmp_path: Path) -> None:
    # No --socket, no [control] socket anywhere: the path comes from the state directory, by the
    # daemon's own rules (addicted_jobs.paths), read without pydantic (~0.3 s of every command).
    config = tmp_path / "config.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n', encoding="utf-8")
    env = {"ADDICTED_JOBS_CONTROL__SOCKET": "", "RUNTIME_DIRECTORY": ""}
    code, modules = loaded_by("ping", "--json", env={**env, "STATE_DIRECTORY": str(tmp_path)})
    assert code == 3
    assert "addicted_jobs.settings" not in modules and "pydantic" not in modules
    # The rules join strings with os.path: pathlib (~4 ms) is not needed to find the socket.
    assert "pathlib" not in modules and "argparse" not in modules
    # A config file that does not parse goes to the full settings, which name the fault: exit 78.
    config.write_text("[state\n", encoding="utf-8")
    code, _ = loaded_by("ping", "--config", str(config), env=env)
    assert code == 78
