"""Defects an operator met on the command line (issue 17): each is a test of what they now see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from addicted_jobs import cli
from addicted_jobs.cli.parser import build_parser
from addicted_jobs.settings import ConfigError, check_queue_names, load_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ADDICTED_JOBS_") or key in ("STATE_DIRECTORY", "RUNTIME_DIRECTORY"):
            monkeypatch.delenv(key)


def test_an_environment_variable_with_underscores_sets_the_hyphenated_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADDICTED_JOBS_QUEUES__FETCH_SUBTITLES__CONCURRENCY", "4")
    settings = load_settings(None)
    assert settings.queue_concurrency("fetch-subtitles") == 4
    assert "fetch_subtitles" not in settings.queues


def test_the_environment_still_wins_over_the_file_for_a_hyphenated_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[queues.fetch-subtitles]\nconcurrency = 2\n")
    assert load_settings(config).queue_concurrency("fetch-subtitles") == 2
    monkeypatch.setenv("ADDICTED_JOBS_QUEUES__FETCH_SUBTITLES__CONCURRENCY", "7")
    assert load_settings(config).queue_concurrency("fetch-subtitles") == 7


def test_a_typo_in_a_queue_section_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[queues.fetch-subtitle]\nconcurrency = 4\n")
    settings = load_settings(config)
    known = {"default", "fetch-subtitles", "refresh-one-show"}
    with pytest.raises(ConfigError) as caught:
        check_queue_names(settings, known | set(load_settings(None).queues))
    message = str(caught.value)
    assert "key 'queues.fetch-subtitle': no such queue" in message
    assert "fetch-subtitles" in message and "'-' as '_'" in message


def test_the_example_config_leaves_the_state_directory_to_systemd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/addicted-jobs")
    settings = load_settings(ROOT / "config.example.toml")
    assert settings.state.dir == Path("/var/lib/addicted-jobs")
    text = (ROOT / "config.example.toml").read_text()
    assert "skipped with a warning" not in text  # unknown recurring jobs stop the daemon (78)


@pytest.mark.parametrize("value", ["12h", "1d12h", "90m", "PT12H", 43200])
def test_durations_take_iso_8601_or_short_forms(tmp_path: Path, value: object) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[refresh]\nseason_refresh = {json.dumps(value)}\n")
    seconds = load_settings(config).refresh.season_refresh.total_seconds()
    assert seconds == {"1d12h": 129600, "90m": 5400}.get(str(value), 43200)


def test_a_bad_duration_names_both_accepted_forms(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[refresh]\nseason_refresh = "twelve hours"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "refresh.season_refresh" in str(caught.value) and "PT12H" in str(caught.value)
    assert "12h" in str(caught.value)


def test_without_a_configured_socket_the_cli_finds_the_units_runtime_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[log]\nlevel = "info"\n')
    unit_socket = tmp_path / "run" / "control.sock"
    unit_socket.parent.mkdir()
    monkeypatch.setattr(cli, "UNIT_SOCKET", unit_socket)
    monkeypatch.chdir(tmp_path)
    ns = build_parser().parse_args(["ping", "--config", str(config)])
    assert Path(cli.resolve_socket(ns)) == tmp_path / ".state" / "control.sock"  # no unit socket
    unit_socket.touch()
    assert Path(cli.resolve_socket(ns)) == unit_socket


@pytest.mark.parametrize("name", ["ADDICTED_JOBS_CONTROL__SOCKET", "addicted_jobs_control__socket"])
def test_a_socket_named_by_the_environment_is_used_as_given_in_any_letter_case(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's settings read the variable in any case; the command line must point at the
    # same socket, not fall back to the unit's because the named one is not there (yet).
    unit_socket = tmp_path / "run" / "control.sock"
    unit_socket.parent.mkdir()
    unit_socket.touch()
    monkeypatch.setattr(cli, "UNIT_SOCKET", unit_socket)
    for other in ("ADDICTED_JOBS_CONTROL__SOCKET", "RUNTIME_DIRECTORY"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, str(tmp_path / "named.sock"))
    ns = build_parser().parse_args(["ping"])
    assert Path(cli.resolve_socket(ns)) == tmp_path / "named.sock"


@pytest.mark.parametrize(
    "argv",
    [
        ["ping", "--timeout", "0"],
        ["ping", "--timeout", "-1"],
        ["ping", "--timeout", "soon"],
        ["ping", "--timeout", "inf"],
        ["ping", "--timeout", "nan"],
        ["top", "--interval", "0"],
        ["top", "--interval", "0.01"],
    ],
)
def test_zero_or_negative_timeouts_and_intervals_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*argv, "--socket", "/nonexistent.sock"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert argv[1] in err and ("at least" in err or "not a number" in err)


def test_a_regular_file_as_socket_says_not_a_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "file"
    plain.write_text("x")
    assert cli.main(["ping", "--socket", str(plain)]) == cli.EXIT_UNREACHABLE
    assert "is not a socket" in capsys.readouterr().err


def test_errors_with_json_are_one_json_object_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["queues", "--json", "--socket", str(tmp_path / "none.sock")]) == 3
    captured = capsys.readouterr()
    error = json.loads(captured.out)
    assert error["ok"] is False and error["error"]["code"] == "unreachable"
    assert error["error"]["exit"] == 3 and captured.err == ""
    assert cli.main(["jobs", "--json", "--limit", "many", "--socket", "/x"]) == 2
    usage = json.loads(capsys.readouterr().out)
    assert usage["error"]["code"] == "usage" and "--limit" in usage["error"]["message"]


def test_enqueue_json_before_the_job_name_takes_the_name(tmp_path: Path) -> None:
    from addicted_jobs.cli.engine import enqueue_request

    ns = build_parser().parse_args(["enqueue", "--json", "noop", "sleep_ms=2"])
    assert enqueue_request(ns) == ({"name": "noop", "args": {"sleep_ms": "2"}}, True)
    ns = build_parser().parse_args(["enqueue", "--json"])
    with pytest.raises(cli.UsageError, match="JOB is required"):
        enqueue_request(ns)


def test_enqueue_help_points_to_job_types() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "addicted_jobs", "enqueue", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 0 and "addicted-jobs job-types" in done.stdout


def test_a_duration_past_timedelta_range_is_a_usage_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    """`jobs --since 99999999999d` printed an OverflowError traceback; a config key did too."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "addicted_jobs",
            "jobs",
            "--since",
            "99999999999d",
            "--socket",
            "/nx",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "'99999999999d': too long" in done.stderr
    config = tmp_path / "c.toml"
    config.write_text('[refresh]\nseason_refresh = "99999999999d"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "refresh.season_refresh" in str(caught.value) and "too long" in str(caught.value)
