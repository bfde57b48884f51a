"""The three log formats, and the journal detection through JOURNAL_STREAM."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
import threading
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


def _without_stamp(text: str, fmt: str) -> str:
    if fmt == "json":
        entry = json.loads(text)
        entry.pop("timestamp")
        return json.dumps(entry)
    if fmt == "console":  # the console line starts with the time of day
        return text.split(" ", 1)[1]
    return text  # journald stamps lines itself: no timestamp to drop


FINISH_LINES = [
    {"id": 7, "name": "noop", "queue": "default", "attempt": 1, "duration_ms": 0.05},
    # The error of a failed job may carry a URL with a key and a header dump: redacted alike.
    {
        "id": 2**70,
        "name": "fetch",
        "queue": "q",
        "outcome": "retry",
        "error": "GET https://api.example/3/tv?api_key=KEY1 'Authorization': 'Bearer KEY2'",
        "retry_in_s": 12.5,
    },
]


@pytest.mark.parametrize("fmt", ["json", "journal", "console"])
@pytest.mark.parametrize("method", ["info", "warning", "error"])
@pytest.mark.parametrize("fields", FINISH_LINES)
def test_the_line_writer_writes_what_the_logger_writes(fmt: str, method: str, fields: dict) -> None:
    # The engine writes its line per finished job through LineWriter: a reader of the journal
    # (or of JSON, or of a terminal) must not be able to tell it from the logger's own lines,
    # context variables, the job context and redaction included.
    out = io.StringIO()
    logs.configure("info", fmt, out)
    logger = structlog.get_logger("addicted_jobs").bind()
    writer = logs.LineWriter(logger)
    structlog.contextvars.bind_contextvars(request_id="r-1")
    token = logs.JOB_CONTEXT.set({"job_id": 9, "job": "outer"})
    try:
        getattr(logger, method)("job finished", **fields)
        writer(method, "job finished", dict(fields))
    finally:
        logs.JOB_CONTEXT.reset(token)
        structlog.contextvars.clear_contextvars()
    by_logger, by_writer = out.getvalue().splitlines()
    assert "KEY1" not in by_writer and "KEY2" not in by_writer
    assert "request_id" in by_writer and "job_id" in by_writer
    assert _without_stamp(by_writer, fmt) == _without_stamp(by_logger, fmt)


def test_the_line_writer_follows_a_level_change() -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    writer = logs.LineWriter(structlog.get_logger("t"))
    logs.set_level("warning")  # what a reload does
    writer("info", "job finished", {"id": 1})
    writer("warning", "job finished", {"id": 2})
    writer("error", "job finished", {"id": 3})
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == [2, 3]


def test_the_line_writer_hands_over_to_structlog_when_someone_else_configured_it() -> None:
    # structlog.testing.capture_logs (or any later structlog.configure) replaces the processors:
    # the writer must not keep writing to the stream configure() chose.
    out = io.StringIO()
    logs.configure("info", "json", out)
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[capture])  # a new list: configured anew, not edited
    writer = logs.LineWriter(structlog.get_logger("t"))
    writer("info", "job finished", {"id": 4})
    assert out.getvalue() == ""
    assert capture.entries == [{"event": "job finished", "id": 4, "log_level": "info"}]


def test_a_stream_that_buffers_is_flushed_after_each_line(tmp_path: Path) -> None:
    # A block-buffered file (PYTHONUNBUFFERED unset, stderr reopened by a supervisor) must still
    # show each job's line as it ends, not 8 KiB later.
    with open(tmp_path / "log", "w", buffering=8192) as stream:
        logs.configure("info", "json", stream)
        logs.LineWriter(structlog.get_logger("t"))("info", "job finished", {"id": 8})
        assert json.loads((tmp_path / "log").read_text())["id"] == 8


def test_a_line_writer_built_before_capture_logs_is_captured_too() -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    writer = logs.LineWriter(structlog.get_logger("t"))  # the engine builds it at start
    with structlog.testing.capture_logs() as captured:
        writer("error", "job finished", {"id": 5})
    assert out.getvalue() == ""
    assert captured == [{"event": "job finished", "id": 5, "log_level": "error"}]


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_finish_lines_of_one_loop_turn_go_out_in_one_write_and_in_order() -> None:
    out = _CountingStream()
    logs.configure("info", "json", out)
    writer = logs.LineWriter(structlog.get_logger("t"))

    async def turn() -> tuple[str, int]:
        for job_id in range(1, 11):
            writer("info", "job finished", {"id": job_id})
        seen_within_the_turn = out.getvalue()
        await asyncio.sleep(0)  # the turn ends: the waiting lines are written
        writes = out.writes
        for job_id in range(11, 14):
            writer("info", "job finished", {"id": job_id})
        structlog.get_logger("t").warning("a direct line")  # after 11-13, not before them
        return seen_within_the_turn, writes

    seen_within_the_turn, writes_after_the_turn = asyncio.run(turn())
    assert seen_within_the_turn == ""
    assert writes_after_the_turn == 1
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("id") for line in lines] == [*range(1, 14), None]
    assert lines[-1]["event"] == "a direct line"


def test_waiting_lines_are_bounded_and_written_by_another_thread_first() -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    writer = logs.LineWriter(structlog.get_logger("t"))

    async def blocked_turn() -> str:
        for job_id in range(logs.SafeStream.MAX_WAITING + 5):
            writer("info", "job finished", {"id": job_id})
        at_the_bound = out.getvalue()
        # The loop guard writes from its own thread while the loop is blocked: the waiting
        # lines go first, so the warning never appears before the jobs that ran.
        thread = threading.Thread(target=lambda: structlog.get_logger("t").warning("blocked"))
        thread.start()
        thread.join()
        return at_the_bound

    at_the_bound = asyncio.run(blocked_turn())
    assert len(at_the_bound.splitlines()) == logs.SafeStream.MAX_WAITING
    events = [json.loads(line).get("id", "blocked") for line in out.getvalue().splitlines()]
    assert events == [*range(logs.SafeStream.MAX_WAITING + 5), "blocked"]


def test_lines_still_waiting_when_the_process_exits_are_written() -> None:
    # The loop stops in the turn that wrote the line, so the end-of-turn write never runs: the
    # interpreter's exit writes it.
    script = (
        "import asyncio, structlog\n"
        "from addicted_jobs import logs\n"
        "logs.configure('info', 'json')\n"
        "writer = logs.LineWriter(structlog.get_logger('t'))\n"
        "loop = asyncio.new_event_loop()\n"
        "def turn():\n"
        "    writer('info', 'job finished', {'id': 42})\n"
        "    loop.stop()\n"
        "loop.call_soon(turn)\n"
        "loop.run_forever()\n"
        "assert logs._ACTIVE.stream._waiting, 'the line should still be waiting here'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr)["id"] == 42


def test_the_line_writer_survives_a_broken_stream_and_keeps_no_line_for_it() -> None:
    # The reader of our stderr is gone (EPIPE): no finish line may raise into the engine (the
    # job's outcome is recorded), and none may wait forever for a stream that cannot take it.
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    logs.configure("info", "journal", Broken())
    writer = logs.LineWriter(structlog.get_logger("t"))
    writer("error", "job finished", {"id": 5})  # outside a loop: written (and dropped) at once

    async def turns() -> None:
        for _ in range(50):
            for job_id in range(10):
                writer("info", "job finished", {"id": job_id})
            await asyncio.sleep(0)

    asyncio.run(turns())
    assert logs._ACTIVE is not None and logs._ACTIVE.stream._waiting == []


def test_an_exception_raised_into_a_write_keeps_the_waiting_lines() -> None:
    # LoopGuard raises JobBlockedLoop into the main thread, possibly inside a write: the other
    # jobs' waiting lines must go out with the next write, not vanish.
    class Interrupted(io.StringIO):
        fail_next = False

        def write(self, text: str) -> int:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("interrupted")
            return super().write(text)

    out = Interrupted()
    logs.configure("info", "json", out)
    writer = logs.LineWriter(structlog.get_logger("t"))

    async def turn() -> None:
        for job_id in range(5):
            writer("info", "job finished", {"id": job_id})
        out.fail_next = True
        with contextlib.suppress(RuntimeError):
            structlog.get_logger("t").info("blocked job's own line")
        structlog.get_logger("t").info("next")

    asyncio.run(turn())
    ids = [json.loads(line).get("id") for line in out.getvalue().splitlines()]
    assert ids == [0, 1, 2, 3, 4, None]
