"""Domain socket operations given out-of-range numbers and NULs (QA pass after issues 13/15/17):
each is the caller's error (invalid_args) and changes nothing, never an `internal` error from
PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.control import exchange

pytestmark = pytest.mark.acceptance


def request(op: str, args: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, "id": "q", "op": op, "args": args}).encode() + b"\n"


async def test_domain_arguments_out_of_range_or_with_a_nul_are_invalid_args(
    daemon_factory: Any, db_dsn: str
) -> None:
    daemon = daemon_factory("domain-inputs", {"database": {"dsn": db_dsn}}).start().wait_ready()
    fetch = {"show_id": 1, "season": 1, "episode": 1, "language": "en"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        # Was `internal`: DataError, value out of int32 range.
        ("credentials-remove", {"id": 2**31}, "less than or equal to 2147483647"),
        (
            "enqueue",
            {"name": "reset_download_credential", "args": {"credential_id": 2**40}},
            "less than or equal to 2147483647",
        ),
        # Was `internal`: UntranslatableCharacterError from the jsonb arguments.
        (
            "enqueue",
            {"name": "fetch_subtitles", "args": {**fetch, "file_name": "a\x00.mkv"}},
            "NUL",
        ),
        # Was "'utf-8' codec can't decode byte 0xff in position 10".
        (
            "enqueue",
            {"name": "fetch_subtitles", "args": {**fetch, "language": "e\x00n"}},
            "unknown language",
        ),
        ("request-subtitles", {**fetch, "language": "e\x00n"}, "unknown language"),
    ]
    for op, args, expected in cases:
        [line] = await exchange(daemon.socket_path, request(op, args))
        reply = json.loads(line)
        assert reply["ok"] is False, (op, args, reply)
        assert reply["error"]["code"] == "invalid_args", (op, args, reply)
        assert expected in reply["error"]["message"], (op, args, reply)
    jobs = json.loads(daemon.cli("jobs", "--json").stdout)["jobs"]
    assert jobs == []
    assert "control operation failed unexpectedly" not in daemon.log_text()
    assert daemon.stop() == 0
