"""The three log formats, and the journal detection through JOURNAL_STREAM."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
from pathlib import Path

import pytest
import structlog

from addicted_jobs import logs


@pytest.fixture(autouse=True)
def _reset_logging() -> None:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


def test_json_lines_carry_level_event_and_fields() -> None:
    out = io.StringIO()
    assert logs.configure("info", "json", out) == "json"
    structlog.get_logger("t").info("job finished", id=3, outcome="succeeded")
    structlog.get_logger("t").debug("hidden")
    [line] = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["event"] == "job finished" and entry["id"] == 3 and entry["level"] == "info"


def test_journal_lines_are_logfmt_with_a_syslog_priority_prefix() -> None:
    out = io.StringIO()
    logs.configure("info", "journal", out)
    structlog.get_logger("t").warning("slow upstream", host="addic7ed")
    structlog.get_logger("t").error("boom")
    structlog.get_logger("t").info("fine", n=1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("<4>level=warning event=") and "host=addic7ed" in lines[0]
    assert lines[1].startswith("<3>level=error")
    assert lines[2].startswith("<6>level=info")


def test_standard_library_loggers_share_the_pipeline_and_noisy_ones_are_quiet() -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    logging.getLogger("daemon.something").warning("from stdlib %s", "logging")
    logging.getLogger("asyncpg").info("chatter")
    [line] = out.getvalue().splitlines()
    assert json.loads(line)["event"] == "from stdlib logging"
    logs.set_level("debug")
    logging.getLogger("asyncpg").debug("now visible")
    assert "now visible" in out.getvalue()


def test_console_format_on_a_terminal_and_journal_when_stderr_is_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert logs.choose_format("auto", Tty()) == "console"
    assert logs.choose_format("auto", io.StringIO()) == "json"
    with (tmp_path / "stream").open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logs.choose_format("auto", stream) == "journal"
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert logs.choose_format("auto", stream) == "json"
    out = Tty()
    logs.configure("info", "auto", out)
    structlog.get_logger("t").info("hello console", x=1)
    assert "hello console" in out.getvalue() and not out.getvalue().startswith("{")


JOURNAL_CASES = [
    {"level": "info", "event": "job finished", "id": 7, "duration_ms": 0.05, "outcome": "ok"},
    {"event": 'spaces and = and "quotes"', "path": "C:\\dir\\file", "plain": "C:\\dir"},
    {"level": "error", "error": "line one\nline two", "flag": True, "off": False, "none": None},
    {"level": None, "event": "no level", "unicode": "café ü", "empty": "", "list": [1, "a b"]},
    {"event": 'a"b', "k": "\\", "eq": "a=b", "tab": "a\tb"},
]


@pytest.mark.parametrize("event_dict", JOURNAL_CASES)
def test_the_journal_renderer_writes_what_structlogs_logfmt_writes(event_dict: dict) -> None:
    # Our renderer is a faster copy of structlog's (a job's finish line costs a third of the
    # time): the same text for every kind of value, or the journal's readers would notice.
    reference = structlog.processors.LogfmtRenderer(
        key_order=["level", "event"], drop_missing=True, bool_as_flag=False
    )
    ours = logs._JournalRenderer()
    expected = "<6>" + reference(None, "info", dict(event_dict))
    assert ours(None, "info", {**event_dict, "_priority": 6, "timestamp": "t"}) == expected


def test_a_key_logfmt_cannot_carry_is_written_with_underscores_and_never_raises() -> None:
    # structlog's renderer raises into the caller on such a key; the journal line must be written
    # and the call must return (a log call never fails its caller).
    out = io.StringIO()
    logs.configure("info", "journal", out)
    structlog.get_logger("t").info("odd keys", **{"bad key": 1, "tab\there": 2, "a-b.c": 3})
    line = out.getvalue().strip()
    assert line == '<6>level=info event="odd keys" bad_key=1 tab_here=2 a-b.c=3'


def test_json_timestamps_are_utc_iso_with_microseconds() -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    structlog.get_logger("t").info("one")
    stamp = json.loads(out.getvalue())["timestamp"]
    parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - parsed).total_seconds()) < 60


def test_a_job_context_names_the_job_on_every_line_until_it_is_cleared() -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    token = logs.JOB_CONTEXT.set({"job_id": 5, "job": "noop", "queue": "default", "attempt": 1})
    try:
        structlog.get_logger("t").info("inside", queue="own")  # the line's own value wins
        logs.JOB_CONTEXT.set(None)
        structlog.get_logger("t").info("after")
    finally:
        logs.JOB_CONTEXT.reset(token)
    inside, after = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["job_id"] == 5 and inside["job"] == "noop" and inside["queue"] == "own"
    assert "job_id" not in after


def test_a_line_json_cannot_carry_natively_is_still_written() -> None:
    # An audit line carries what a client sent: 2**70 as an id, integer keys, a cycle. The log
    # call must not raise (the request would die without a reply) and the line must be JSON.
    out = io.StringIO()
    logs.configure("info", "json", out)
    cycle: list[object] = []
    cycle.append(cycle)
    structlog.get_logger("t").info("big", arg_id=2**70, keyed={1: "a"}, text="ü")
    structlog.get_logger("t").info("cycle", value=cycle)
    big, looped = (json.loads(line) for line in out.getvalue().splitlines())
    assert big["arg_id"] == 2**70 and big["keyed"] == {"1": "a"} and big["text"] == "ü"
    assert looped["event"] == "cycle" and "[...]" in looped["value"]
