"""The three log formats, and the journal detection through JOURNAL_STREAM."""

from __future__ import annotations

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
