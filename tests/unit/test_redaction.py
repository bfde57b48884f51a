"""Secrets in the small: DSN redaction in every form, URL queries and credential headers in log
lines (ours and libraries'), and the audit line's allow-list of socket arguments."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, ConfigDict

from addicted_jobs import logs
from addicted_jobs.app import OPERATIONS
from addicted_jobs.control.op import Op, Peer
from addicted_jobs.control.server import ControlServer
from addicted_jobs.db import redact, scrub
from addicted_jobs.settings import ConfigError, load_settings

PW = "s3cr3t"


@pytest.fixture(autouse=True)
def _reset_logging() -> None:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://u:{PW}@h/db",
        f"postgresql://u:{PW}@tail@h:5432/db",  # an '@' inside the password
        f"postgresql://u:{PW}/x@h/db",  # a '/' inside the password
        f"postgresql://u@h/db?password={PW}&sslmode=require",
        f"postgresql://u:other@h/db?sslpassword={PW}",
        f"host=h user=u password={PW} dbname=d",
        f"host=h password='{PW} x' user=u",
    ],
)
def test_redact_never_shows_a_password(dsn: str) -> None:
    shown = redact(dsn)
    assert PW not in shown and "tail" not in shown.split("@")[0], shown
    assert "***" in shown
    assert PW not in scrub(f"could not parse {dsn}", dsn)


def test_redact_keeps_what_helps_the_operator() -> None:
    assert redact("postgresql://app:pw@db.example:6432/jobs?sslmode=require") == (
        "postgresql://app:***@db.example:6432/jobs?sslmode=require"
    )


@pytest.mark.parametrize(
    "dsn",
    [f"host=h user=u password={PW}", "postgresql://u:pw@h:port/db", "mysql://u:pw@h/db"],
)
def test_unusable_dsn_forms_are_config_errors_without_the_value(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADDICTED_JOBS_DATABASE__DSN", dsn)
    with pytest.raises(ConfigError) as refused:
        load_settings(None)
    assert "database.dsn" in str(refused.value) and PW not in str(refused.value)
    assert "pw@" not in str(refused.value)


def test_url_queries_and_auth_headers_never_reach_a_log_line() -> None:
    out = io.StringIO()
    logs.configure("debug", "json", out)
    # httpx's own request line, as it logs every request at info
    logging.getLogger("httpx").info(
        'HTTP Request: %s %s "%s"', "GET", "https://api.themoviedb.org/3/tv/1?api_key=KEY1", "200"
    )
    logging.getLogger("botocore.endpoint").info(
        "Sending %s", "{'Authorization': b'AWS4-HMAC-SHA256 Credential=KEY2/2026', 'X': 1}"
    )
    structlog.get_logger("t").warning(
        "failed", error="GET https://h/x?token=KEY3 failed", headers="Cookie: KEY4=1"
    )
    text = out.getvalue()
    for key in ("KEY1", "KEY2", "KEY3", "KEY4"):
        assert key not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["event"].startswith("HTTP Request: GET https://api.themoviedb.org/3/tv/1?")
    assert len(lines) == 3


SECRET_TEXTS = [
    "GET https://h/x?token=KEY1",
    "HTTPS://H/X?SIG=KEY1",
    "AUTHORIZATION: Bearer KEY1",
    "'Proxy-Authorization': b'KEY1'",
    "Set-Cookie: sid=KEY1",
    "x-amz-security-token=KEY1",
    "s3://bucket/key?X-Amz-Signature=KEY1",
]


@pytest.mark.parametrize("text", SECRET_TEXTS)
def test_the_quick_look_never_waves_through_what_redaction_would_change(text: str) -> None:
    # A line skips redaction when the quick look finds nothing (a job's finish line): it must
    # find everything redact_text acts on, in any letter case, in any field of the line.
    assert logs.redact_text(text) != text
    assert logs._may_need_redaction(["job finished", "noop", text])
    out = io.StringIO()
    logs.configure("info", "json", out)
    structlog.get_logger("t").info("job finished", id=1, name="noop", error=text)
    assert "KEY1" not in out.getvalue()


def test_the_quick_look_passes_plain_lines() -> None:
    assert not logs._may_need_redaction(["job finished", "noop", "default", "succeeded"])


def test_header_dumping_libraries_stay_at_info_when_debugging() -> None:
    logs.configure("debug", "json", io.StringIO())
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.INFO


def test_a_broken_log_stream_never_raises_into_the_caller() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    logs.configure("info", "json", Broken())
    structlog.get_logger("t").info("into a broken pipe")  # must not raise
    logging.getLogger("daemon.x").error("and through the standard library")


# ---- the audit line -----------------------------------------------------------------------------


async def _echo(args: Any, peer: Peer) -> dict[str, Any]:
    return {"ok": True}


def _echoing(*names: str) -> list[Op]:
    """The daemon's own records of these operations (their argument models and audit lists),
    each answering without touching anything."""
    return [replace(o, handler=_echo) for o in OPERATIONS if o.name in names]


class _FutureArgs(BaseModel):
    model_config = ConfigDict(extra="allow")


async def _audit(server: ControlServer, op: str, args: dict[str, Any]) -> dict[str, Any]:
    out = io.StringIO()
    logs.configure("info", "json", out)
    line = json.dumps({"v": 1, "id": 1, "op": op, "args": args}).encode()
    await server.handle_line(line, Peer(1, 2, 3))
    [entry] = [json.loads(x) for x in out.getvalue().splitlines()]
    return {k: v for k, v in entry.items() if k.startswith("arg_")}


async def test_audit_lines_show_allowed_arguments_only() -> None:
    server = ControlServer(Path("/unused"), _echoing("credentials-add", "retry"))
    assert await _audit(server, "credentials-add", {"cookie": "short=1"}) == {}
    assert await _audit(server, "retry", {"id": 7, "note": "x"}) == {"arg_id": 7}


async def test_a_new_operation_logs_no_arguments_until_it_lists_them() -> None:
    server = ControlServer(
        Path("/unused"),
        [
            Op("future-op", _FutureArgs, _echo),
            Op("listed-op", _FutureArgs, _echo, audit=frozenset({"count", "names"})),
        ],
    )
    secret = {"password": "p", "api": "k", "url": "https://u:p@h", "count": 3}
    assert await _audit(server, "future-op", secret) == {}
    listed = await _audit(server, "listed-op", {**secret, "names": ["a", "b"]})
    assert listed == {"arg_count": 3, "arg_names": "<2 items>"}


async def test_issue_17_operations_name_what_they_changed_in_their_audit_line() -> None:
    ops = ("delete", "recurring-disable", "recurring-enable", "cancel-many", "delete-many")
    server = ControlServer(Path("/unused"), _echoing(*ops))
    # These lines showed no argument at all: which job was deleted, which entry disabled?
    assert await _audit(server, "delete", {"id": 9}) == {"arg_id": 9}
    assert await _audit(server, "recurring-disable", {"name": "redeem"}) == {"arg_name": "redeem"}
    assert await _audit(server, "recurring-enable", {"name": "redeem"}) == {"arg_name": "redeem"}
    bulk = {"state": "failed", "queue": "default", "dry_run": True, "error": "cookie=x", "args": {}}
    expected = {"arg_state": "failed", "arg_queue": "default", "arg_dry_run": True}
    assert await _audit(server, "cancel-many", bulk) == expected
    assert await _audit(server, "delete-many", bulk) == expected
