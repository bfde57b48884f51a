"""structlog set-up: console on a terminal, logfmt with a syslog priority in the journal, JSON otherwise.

Standard-library loggers (asyncpg, httpx, botocore, apscheduler) go through the same renderer and
are kept quiet unless the level is debug.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# syslog priorities understood by journald when a line starts with "<N>" (sd-daemon.h)
PRIORITIES = {
    "debug": 7,
    "info": 6,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "critical": 2,
    "exception": 3,
}
NOISY = (
    "httpx",
    "httpcore",
    "botocore",
    "aiobotocore",
    "aioboto3",
    "asyncpg",
    "apscheduler",
    "aiohttp.access",
    "urllib3",
    "s3transfer",
)


# A URL's query may carry a secret (TMDB's v3 api_key, a signed S3 link): every URL in a log line,
# ours or a library's (httpx logs each request at info, httpcore at debug), loses its query.
URL_QUERY = re.compile(r"""(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"'<>]*)\?[^\s#"'<>]*""")
QUERY_REDACTED = "?<query redacted>"


# Credential-carrying headers as libraries print them in debug dumps ('Authorization': b'...',
# Cookie: ...): the value goes, the name stays.
SECRET_HEADER = re.compile(
    r"""(?i)(['"]?\b(?:proxy-)?authorization|['"]?\b(?:set-)?cookie|['"]?x-amz-security-token)"""
    r"""(['"]?\s*[:=]\s*b?)(?:(['"]).*?\3|[^,}\r\n]*)"""
)
HEADER_HINT = re.compile(r"(?i)authorization|cookie|security-token")
# Libraries that dump request headers, signed URLs or bodies at debug: never below info, even
# when our own level is debug (botocore prints the SigV4 Authorization header with the key id).
HEADER_DUMPERS = ("botocore", "aiobotocore", "aioboto3", "s3transfer", "urllib3")


def strip_url_queries(text: str) -> str:
    """`text` with the query of every URL in it replaced by `?<query redacted>`."""
    if "?" not in text or "://" not in text:
        return text
    return URL_QUERY.sub(lambda m: m[1] + QUERY_REDACTED, text)


def redact_text(text: str) -> str:
    """`text` without URL queries and without the values of credential-carrying headers."""
    text = strip_url_queries(text)
    if HEADER_HINT.search(text):
        text = SECRET_HEADER.sub(r"\1\2<redacted>", text)
    return text


def _may_need_redaction(texts: list[str]) -> bool:
    # One look at all the strings of a line, lower-cased, for what redact_text acts on (a URL,
    # a credential header's name). A job's finish line (names, labels) never has one, and a
    # regex search per value took a third of the line's cost (~10 of 34 us; every job writes one
    # line). Substring tests on one lower-cased string: 0.3 us, a case-insensitive regex 6 us.
    # Spelled out rather than any(<generator>): the generator alone cost ~0.7 us a line.
    joined = "\n".join(texts).lower()
    return (
        "://" in joined
        or "authorization" in joined
        or "cookie" in joined
        or "security-token" in joined
    )


def _redact_urls(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    texts = [value for value in event_dict.values() if isinstance(value, str)]
    if not texts or not _may_need_redaction(texts):
        return event_dict
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


# The job a line is written for: the engine sets it in each job's own task (a task's context is
# its own copy), so every line the handler and the libraries it calls write carries job_id, job,
# queue and attempt. One ContextVar set per job: structlog's bind_contextvars with
# clear_contextvars cost ~5 us of every job's ~100 us in the worker.
JOB_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("addicted_jobs_log_job", default=None)


def _merge_job(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    bound = JOB_CONTEXT.get()
    if bound:
        for key, value in bound.items():
            event_dict.setdefault(key, value)
    return event_dict


class _UtcStamper:
    """`timestamp` as ISO 8601 in UTC with microseconds (2026-11-30T11:53:29.123456Z), the
    date and time formatted once per second: structlog's TimeStamper builds a datetime for every
    line, ~3.5 us of the ~34 us a job's finish line cost."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


def _dumps(value: Any, **options: Any) -> str:
    """One log line as JSON; never raises, since a log call must never fail its caller (a
    request's audit line carries what the client sent). orjson is ~5x faster than json.dumps on
    a log line; it refuses what the standard library takes (an integer beyond 64 bits, a key
    that is not a string), and those lines go through json.dumps; a value json cannot take
    either (a cycle) is written as repr. Non-JSON values become str(), as in structlog's own
    JSONRenderer."""
    default = options.get("default", str)
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        pass
    try:
        return json.dumps(value, default=default, ensure_ascii=False)
    except (TypeError, ValueError):
        plain = (str, int, float, bool, type(None))
        fields = {str(k): v if isinstance(v, plain) else repr(v) for k, v in value.items()}
        return json.dumps(fields, ensure_ascii=False)


class SafeStream:
    """The log stream, made harmless: a write to a closed or broken stream (the reader of our
    stderr pipe killed, `make run | tee` after Ctrl-C) is dropped instead of raising into the
    caller, which may be a signal handler, a request or the shutdown itself. One lock for every
    writer of the stream (structlog's, the standard library's handler, LineWriter), so lines
    written from two threads (the loop guard's) never interleave.

    Lines given to write_soon() (the engine's line per finished job) are written together when
    the event loop's current turn ends: one write() system call for the ~10 jobs a turn
    finishes instead of one each (the call was ~10% of a job's CPU in the worker, measured with
    py-spy on a 80,000-job drain). Any other write, and flush(), first writes what is waiting, so
    the order of lines never changes. A daemon killed (SIGKILL) mid-turn loses that turn's
    waiting lines, never one of a job whose outcome reached the database: the outcome flusher
    writes the waiting lines before it sends a batch (write_waiting_lines), so those jobs run
    again after recovery and log then."""

    # Written at once past this many waiting lines, whatever the turn (memory stays bounded).
    MAX_WAITING = 256

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False
        self.lock = threading.Lock()
        self._waiting: list[str] = []
        # Python's stderr is line-buffered (3.9+): each line is written as it ends, so a flush
        # after it has nothing left to do. A stream that buffers more is flushed after each line.
        self.needs_flush = not getattr(stream, "line_buffering", False)

    def _put(self, text: str) -> int:
        # Under self.lock. The waiting lines are dropped only once written (an exception raised
        # into a write, LoopGuard's JobBlockedLoop, leaves them for the next write) or once the
        # stream is broken (they can never be written: kept, they would grow without bound).
        if self.broken:
            self._waiting.clear()
            return len(text)
        if not (text or self._waiting):
            return 0
        try:
            written = self.stream.write("".join(self._waiting) + text if self._waiting else text)
            self._waiting.clear()
            if self.needs_flush:
                self.stream.flush()
            return written
        except (OSError, ValueError):  # EPIPE, EIO, a closed file
            self.broken = True
            self._waiting.clear()
            return len(text)

    def write(self, text: str) -> int:
        """Write `text` now, after the lines waiting for the end of the turn; never raises."""
        with self.lock:
            return self._put(text)

    def write_soon(self, line: str) -> None:
        """Write `line` (ending in a newline) when the running event loop's current turn ends, or
        now when no loop runs in this thread; never raises."""
        if self.broken:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write(line)
            return
        with self.lock:
            self._waiting.append(line)
            waiting = len(self._waiting)
            if waiting >= self.MAX_WAITING:
                self._put("")
                return
        if waiting == 1:
            loop.call_soon(self.write_waiting)

    def write_waiting(self) -> None:
        """Write the lines waiting for the end of the turn, if any."""
        with self.lock:
            self._put("")

    def flush(self) -> None:
        with self.lock:
            self._put("")
            if self.broken:
                return
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.broken = True

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False


def stream_is_journal(stream: TextIO) -> bool:
    """True when `stream` is the journal stream systemd connected us to (JOURNAL_STREAM=dev:ino)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def choose_format(requested: str, stream: TextIO) -> str:
    if requested != "auto":
        return requested
    if stream_is_journal(stream):
        return "journal"
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def _journal_prefix(_: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict["_priority"] = PRIORITIES.get(event_dict.get("level", method), 6)
    return event_dict


class _JournalRenderer:
    """logfmt after a `<N>` priority prefix, so `journalctl -p warning` filters our lines.

    The same text as structlog's LogfmtRenderer(key_order=["level", "event"], drop_missing=True,
    bool_as_flag=False) (tests/unit/test_logs.py compares the two), at a third of its cost: it
    checked every key character by character on every line (~20 us of a job's finish line);
    here an identifier (every key the code writes) passes in one C call. A key with a space or a
    control character, which structlog refuses by raising into the caller, is written with `_`
    in their place: a log call never fails its caller (as _dumps for JSON)."""

    KEY_ORDER = ("level", "event")
    NOT_IN_A_KEY = re.compile(r"[\x00-\x20]")

    @classmethod
    def _key(cls, key: str) -> str:
        return key if key.isidentifier() else cls.NOT_IN_A_KEY.sub("_", key)

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        priority = event_dict.pop("_priority", 6)
        event_dict.pop("timestamp", None)  # journald stamps every line itself
        # As drop_missing: a key of KEY_ORDER that is absent or None is left out.
        first = [(k, v) for k in self.KEY_ORDER if (v := event_dict.pop(k, None)) is not None]
        elements: list[str] = []
        for name, value in (*first, *event_dict.items()):
            key = self._key(name)
            if value is None:
                elements.append(f"{key}=")
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            text = str(value)
            quoted = " " in text or "=" in text or '"' in text
            if quoted and "\\" in text:
                text = text.replace("\\", "\\\\")
            if '"' in text:
                text = text.replace('"', '\\"')
            if "\n" in text:
                text = text.replace("\n", "\\n")
            elements.append(f'{key}="{text}"' if quoted else f"{key}={text}")
        return f"<{priority}>" + " ".join(elements)


def _renderer(fmt: str) -> list[Processor]:
    if fmt == "console":
        return [structlog.dev.ConsoleRenderer(colors=True)]
    if fmt == "journal":
        return [_journal_prefix, _JournalRenderer()]
    # No dict_tracebacks here: format_exc_info (shared, before this) has already turned exc_info
    # into the `exception` text, so it only looked for an exc_info on every line (~1 us each).
    return [structlog.processors.JSONRenderer(_dumps)]


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> str:
    """Configure structlog and the standard library; returns the format actually chosen."""
    chosen = choose_format(fmt, stream or sys.stderr)
    out: Any = SafeStream(stream or sys.stderr)
    # A failing handler must not print "--- Logging error ---" to the stream that just failed.
    logging.raiseExceptions = False
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _merge_job,
        structlog.processors.add_log_level,
        _UtcStamper(),
    ]
    if chosen != "console":
        shared.append(structlog.processors.format_exc_info)
    shared.append(_redact_urls)
    processors = [*shared, *_renderer(chosen)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # The standard library flushes this handler at exit (logging.shutdown, an atexit hook), and
    # with it the lines still waiting for the end of a loop turn (SafeStream.write_soon).
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_renderer(chosen),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.stream.write_waiting()  # the lines the previous stream still holds
    _ACTIVE = _Configured(processors, out, LEVELS[level])
    set_level(level)
    return chosen


def set_level(level: str) -> None:
    """Change the level at run time (SIGHUP); noisy libraries stay at warning unless debugging."""
    numeric = LEVELS[level]
    logging.getLogger().setLevel(numeric)
    for name in NOISY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
    for name in HEADER_DUMPERS:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))
    config = structlog.get_config()
    structlog.configure(
        **{**config, "wrapper_class": structlog.make_filtering_bound_logger(numeric)}
    )
    if _ACTIVE is not None:
        _ACTIVE.level = numeric


def get_logger(name: str | None = None, **context: Any) -> Any:
    return structlog.get_logger(name).bind(**context) if context else structlog.get_logger(name)


class _Configured:
    """What configure() installed: LineWriter writes through the same processors and stream."""

    def __init__(self, processors: list[Processor], stream: SafeStream, level: int) -> None:
        self.processors = processors
        self.stream = stream
        self.level = level


_ACTIVE: _Configured | None = None


def write_waiting_lines() -> None:
    """Write now the lines waiting for the end of the loop's turn (SafeStream.write_soon). The
    outcome flusher calls it before it sends outcomes: a job's line is never behind its
    recorded outcome, even when the flush runs in the turn right after the job's end."""
    if _ACTIVE is not None:
        _ACTIVE.stream.write_waiting()


class LineWriter:
    """Writes one line through the processors configure() installed, without structlog's
    per-call plumbing: the engine's line per finished job, `writer("info", "job finished",
    fields)`. The same processors in the same order make the same text as
    `logger.info("job finished", **fields)` (tests/unit/test_logs.py compares the two in every
    format); what is left out is the bound logger's proxy, the copy of its (empty) context and
    WriteLogger's lock and flush, and the line is written at the end of the loop's turn with the
    turn's others (SafeStream.write_soon). bench/log_line.py measures the two paths; in the
    daemon, with the batched writes, a 40,000-job drain took 60 us of worker CPU per job instead
    of 74 (user + system, five interleaved pairs). `fields` is taken over: the caller passes a
    dict it does not reuse.

    The level (set_level, a reload) and the processors are read from what configure()
    installed on every line, so a level change and a change made to the processors' list in
    place (structlog.testing.capture_logs) apply; when structlog had been configured anew since
    configure() when the writer was built, its lines go to `fallback`, a structlog logger, as
    before."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback
        active = _ACTIVE
        configured_since = active is not None and (
            structlog.get_config()["processors"] is not active.processors
        )
        self._active = None if configured_since else active

    def __call__(self, method: str, event: str, fields: dict[str, Any]) -> None:
        """Write `event` with `fields` at `method` ("info", "warning", "error"); never raises
        for a bad value (the renderers fall back, as every line's do)."""
        active = self._active
        if active is None:
            getattr(self._fallback, method)(event, **fields)
            return
        if LEVELS.get(method, logging.CRITICAL) < active.level:
            return
        fields["event"] = event
        line: Any = fields
        try:
            for processor in active.processors:
                line = processor(active.stream, method, line)
        except structlog.DropEvent:
            return
        if not isinstance(line, str):  # not a renderer's text: a chain configure() did not make
            return
        active.stream.write_soon(line + "\n")
