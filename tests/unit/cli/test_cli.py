"""The command line without a daemon: argument parsing, socket resolution, exit codes, output,
the live view's frame, and how a domain command plugs in."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from addicted_jobs import cli
from addicted_jobs.cli import output as cli_output
from addicted_jobs.cli import top
from addicted_jobs.cli.engine import enqueue_request, parse_pairs
from addicted_jobs.control.client import DaemonError
from addicted_jobs.exit_codes import EX_CONFIG


class FakeClient:
    """Stands in for ControlClient: records calls, answers from a table, raises on request."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any] | None]] = []

    async def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append((op, args))
        answer = self.answers[op]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    async def close(self) -> None:
        return None


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClient]:
    client = FakeClient({})
    monkeypatch.setattr(cli, "make_client", lambda path, timeout: client)
    yield client


def test_pairs_stay_strings_for_the_model_and_json_values_are_parsed() -> None:
    assert parse_pairs(["sleep_ms=5", "tags=[1,2]", "name=a=b", "empty="]) == {
        "sleep_ms": "5",
        "tags": [1, 2],
        "name": "a=b",
        "empty": "",
    }
    for bad in (["novalue"], ["=x"], ["a=1", "a=2"], ["a={oops"]):
        with pytest.raises(cli.UsageError):
            parse_pairs(bad)


def ns(**kw: Any) -> argparse.Namespace:
    base = {"job": "noop", "pairs": [], "json": None, "after": None, "delay": None, "count": None}
    return argparse.Namespace(**{**base, **kw})


def test_enqueue_json_flag_is_output_or_arguments() -> None:
    assert enqueue_request(ns()) == ({"name": "noop", "args": {}}, False)
    assert enqueue_request(ns(json="")) == ({"name": "noop", "args": {}}, True)
    request, as_json = enqueue_request(ns(json='{"sleep_ms": 3}', pairs=["fail=true"], count=4))
    assert request == {"name": "noop", "args": {"sleep_ms": 3, "fail": "true"}, "count": 4}
    assert as_json
    request, _ = enqueue_request(ns(json="sleep_ms=2", after=7, delay=1.5))
    assert request == {"name": "noop", "args": {"sleep_ms": "2"}, "after": 7, "delay": 1.5}
    with pytest.raises(cli.UsageError):
        enqueue_request(ns(json="[1]"))


def test_socket_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[control]\nsocket = "/from/config.sock"\n')
    monkeypatch.setenv("ADDICTED_JOBS_CONTROL__SOCKET", "/from/env.sock")

    def resolve(ns: argparse.Namespace) -> Path:
        return Path(cli.resolve_socket(ns))  # a str where pathlib was not needed

    assert resolve(argparse.Namespace(socket="/flag.sock", config=config)) == Path("/flag.sock")
    assert resolve(argparse.Namespace(socket=None, config=config)) == Path("/from/config.sock")
    assert resolve(argparse.Namespace(socket=None, config=None)) == Path("/from/env.sock")
    monkeypatch.delenv("ADDICTED_JOBS_CONTROL__SOCKET")
    monkeypatch.setenv("ADDICTED_JOBS_STATE__DIR", str(tmp_path))
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    assert resolve(argparse.Namespace(socket=None, config=None)) == tmp_path / "control.sock"


def test_exit_codes(fake: FakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USAGE
    assert cli.main(["nosuchcommand"]) == cli.EXIT_USAGE
    assert cli.main(["enqueue", "noop", "broken", "--socket", "/x"]) == cli.EXIT_USAGE
    fake.answers["job"] = DaemonError("not_found", "no job 9")
    assert cli.main(["job", "9", "--socket", "/x"]) == cli.EXIT_DAEMON_ERROR
    assert "not_found: no job 9" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[control]\nsocket = 5\n")
    assert cli.main(["ping", "--config", str(bad)]) == EX_CONFIG
    assert cli.main(["--version"]) == 0


def test_unreachable_daemon_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["queues", "--socket", str(tmp_path / "none.sock")]) == cli.EXIT_UNREACHABLE
    assert "no control socket" in capsys.readouterr().err


def test_human_and_json_output(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    fake.answers["enqueue"] = {"ids": [4, 5, 6, 7], "created": 4}
    assert cli.main(["enqueue", "noop", "sleep_ms=1", "--count", "4", "--socket", "/x"]) == 0
    assert fake.calls[-1] == ("enqueue", {"name": "noop", "args": {"sleep_ms": "1"}, "count": 4})
    assert "4 new, ids 4..7" in capsys.readouterr().out
    fake.answers["retry"] = {"id": 3, "previous_state": "failed", "state": "ready"}
    assert cli.main(["retry", "3", "--socket", "/x"]) == 0
    assert capsys.readouterr().out.strip() == "job 3: failed -> ready"
    assert cli.main(["retry", "3", "--json", "--socket", "/x"]) == 0
    assert json.loads(capsys.readouterr().out)["previous_state"] == "failed"


def test_a_domain_command_is_one_small_function(
    fake: FakeClient, capsys: pytest.CaptureFixture[str]
) -> None:
    @cli.command("example-op", "an example domain command", cli.arg("show_id", type=int))
    async def example_op(ctx: cli.Context, ns: argparse.Namespace) -> int:
        result = await ctx.call("example-op", {"show_id": ns.show_id})
        ctx.emit(result, lambda r: f"job {r['id']}")
        return 0

    try:
        fake.answers["example-op"] = {"id": 12}
        assert cli.main(["example-op", "42", "--socket", "/x"]) == 0
        assert fake.calls == [("example-op", {"show_id": 42})]
        assert capsys.readouterr().out.strip() == "job 12"
    finally:
        del cli.COMMANDS["example-op"]


def test_tables_align_and_durations_read_well() -> None:
    text = cli_output.table(["NAME", "N"], [["a", 5], ["long name", 12]])
    assert text.splitlines() == ["NAME        N", "a           5", "long name  12"]
    assert [cli_output.duration(s) for s in (3.25, 75, 7300, 200000)] == [
        "3.2s",
        "1m15s",
        "2h01m",
        "2d07h",
    ]


def test_top_frame_shows_queues_throughput_and_failures() -> None:
    stats = {
        "version": "0.1.0",
        "uptime_s": 90,
        "queues": [
            {
                "name": "default",
                "concurrency": 10,
                "paused": False,
                "oldest_ready_age_s": 4.0,
                "counts": {"running": 2, "ready": 7, "scheduled": 1, "failed": 3},
            },
        ],
        "finished_last_minute": {"default": 120},
        "failures": [
            {
                "id": 9,
                "name": "noop",
                "queue": "default",
                "state": "failed",
                "attempt": 1,
                "last_error": "NoopFailure: asked\ntraceback",
                "at": "2026-01-01T00:00:00Z",
            }
        ],
    }
    frame = top.render(stats)
    assert "finished last minute: 120 (2.0/s)" in frame
    row = next(line for line in frame.splitlines() if line.startswith("default"))
    assert row.split() == ["default", "10", "2", "7", "1", "3", "120", "2.0", "4.0s"]
    assert "#9 noop [default] failed attempt 1: NoopFailure: asked" in frame
