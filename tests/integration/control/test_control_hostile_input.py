"""Hostile request lines found by trying the socket as an attacker (QA pass after issues 15/17):
text filters with a NUL, and lines that are small as text but huge once parsed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog

from addicted_jobs.control.protocol import MAX_BATCH, parse_request
from tests.support.control import Control, exchange, jobs_fingerprint


@pytest.fixture(autouse=True)
def _quiet() -> object:
    with structlog.testing.capture_logs():
        yield


def request(op: str, args: dict[str, object]) -> bytes:
    return json.dumps({"v": 1, "id": "q", "op": op, "args": args}).encode() + b"\n"


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("jobs", {"error": "a\x00b"}),
        ("jobs", {"name": "\x00"}),
        ("jobs", {"args": {"show_id": "4\x002"}}),
        ("jobs", {"args": {"sh\x00ow_id": "42"}}),
        ("retry-many", {"error": "x\x00", "dry_run": True}),
        ("cancel-many", {"name": "noop\x00"}),
        ("delete-many", {"args": {"k": "\x00"}, "dry_run": True}),
    ],
)
async def test_a_nul_in_a_filter_is_the_callers_error_and_changes_nothing(
    control: Control, op: str, args: dict[str, object]
) -> None:
    await control.call("enqueue", {"name": "noop", "args": {}, "delay": 3600})
    before = await jobs_fingerprint(control.pool)
    [line] = await exchange(control.path, request(op, args))
    reply = json.loads(line)
    # Was `internal`: CharacterNotInRepertoireError from PostgreSQL.
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_args", reply
    assert "NUL" in reply["error"]["message"]
    assert await jobs_fingerprint(control.pool) == before


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_line_that_parses_into_millions_of_objects_is_refused_unparsed(
    daemon_factory: Any, db_dsn: str
) -> None:
    # 16 MiB of `[{},{},...]` (5.5 million dicts) took the daemon from 66 to 506 MiB, kept
    # afterwards, and held its event loop for a second; 5 million numbers did much the same.
    daemon = daemon_factory("weight", {"database": {"dsn": db_dsn}}).start().wait_ready()
    assert daemon.proc is not None
    before = peak_rss_mib(daemon.proc.pid)
    for body in (b",".join([b"{}"] * 5_000_000), b",".join([b"0.5"] * 4_000_000)):
        line = b'{"v":1,"id":"big","op":"ping","args":{"x":[' + body + b"]}}\n"
        [reply_line] = await exchange(daemon.socket_path, line, timeout=30)
        reply = json.loads(reply_line)
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
        assert "send smaller batches" in reply["error"]["message"]
    grown = peak_rss_mib(daemon.proc.pid) - before
    assert grown < 120, f"the daemon's peak RSS grew {grown:.0f} MiB"
    assert daemon.cli("ping").returncode == 0
    assert daemon.stop() == 0


def test_the_largest_real_batch_still_passes_the_weight_check() -> None:
    job = {"name": "fetch_subtitles", "args": {"show_id": 1, "season": 2, "episode": 3}}
    line = json.dumps({"v": 1, "id": 1, "op": "enqueue", "args": {"jobs": [job] * MAX_BATCH}})
    assert len(parse_request(line.encode()).args["jobs"]) == MAX_BATCH
