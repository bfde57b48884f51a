"""Every kind of bad configuration stops `run` with status 78 and a message naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.acceptance


def run(
    tmp_path: Path, config: Path | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "addicted_jobs",
        "run",
        *(["--config", str(config)] if config else []),
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ADDICTED_JOBS_")}
    return subprocess.run(
        args,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(env or {})},
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "[log]\nlevel = 'loud'\n",
            ["key 'log.level' = 'loud'", "'debug', 'info', 'warning' or 'error'"],
        ),
        ("[log]\ncolour = true\n", ["key 'log.colour'", "no such setting"]),
        ("[nonsense]\nx = 1\n", ["key 'nonsense'", "no such setting"]),
        (
            "[queues.default]\nconcurrency = 'many'\n",
            ["key 'queues.default.concurrency' = 'many'", "valid integer"],
        ),
        (
            "[shutdown]\ngrace_seconds = -1\n",
            ["key 'shutdown.grace_seconds' = -1", "greater than or equal to 0"],
        ),
        (
            "[storage]\nzstd_level = 22\n",
            ["key 'storage.zstd_level' = 22", "less than or equal to 19"],
        ),
        (
            "[storage]\nzstd_level = 'max'\n",
            ["key 'storage.zstd_level' = 'max'", "valid integer"],
        ),
        ("[log\nlevel = 'info'\n", ["invalid TOML"]),
    ],
)
def test_bad_file_exits_78_naming_file_key_value_and_expectation(
    tmp_path: Path, content: str, expected: list[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    result = run(tmp_path, config)
    assert result.returncode == 78, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert str(config) in message
    for fragment in expected:
        assert fragment in message


def test_unreadable_file_exits_78(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    result = run(tmp_path, missing)
    assert result.returncode == 78
    assert f"{missing}: cannot read the config file" in result.stderr


def test_bad_environment_override_names_the_variable(tmp_path: Path) -> None:
    result = run(tmp_path, None, {"ADDICTED_JOBS_SHUTDOWN__GRACE_SECONDS": "soon"})
    assert result.returncode == 78
    assert "environment variable ADDICTED_JOBS_SHUTDOWN__GRACE_SECONDS" in result.stderr
    assert "'soon'" in result.stderr
