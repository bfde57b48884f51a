"""structlog set-up: console on a terminal, logfmt with a syslog priority in the journal, JSON otherwise.

Standard-library loggers (asyncpg, httpx, botocore, apscheduler) go through the same renderer and
are kept quiet unless the level is debug.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, TextIO

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


def _redact_urls(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


class SafeStream:
    """The log stream, made harmless: a write to a closed or broken stream (the reader of our
    stderr pipe killed, `make run | tee` after Ctrl-C) is dropped instead of raising into the
    caller, which may be a signal handler, a request or the shutdown itself."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self.stream.write(text)
        except (OSError, ValueError):  # EPIPE, EIO, a closed file
            self.broken = True
            return len(text)

    def flush(self) -> None:
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
    """logfmt after a `<N>` priority prefix, so `journalctl -p warning` filters our lines."""

    def __init__(self) -> None:
        self._logfmt = structlog.processors.LogfmtRenderer(
            key_order=["level", "event"], drop_missing=True, bool_as_flag=False
        )

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        priority = event_dict.pop("_priority", 6)
        event_dict.pop("timestamp", None)  # journald stamps every line itself
        return f"<{priority}>" + self._logfmt(logger, method, event_dict)


def _renderer(fmt: str) -> list[Processor]:
    if fmt == "console":
        return [structlog.dev.ConsoleRenderer(colors=True)]
    if fmt == "journal":
        return [_journal_prefix, _JournalRenderer()]
    return [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> str:
    """Configure structlog and the standard library; returns the format actually chosen."""
    chosen = choose_format(fmt, stream or sys.stderr)
    out: Any = SafeStream(stream or sys.stderr)
    # A failing handler must not print "--- Logging error ---" to the stream that just failed.
    logging.raiseExceptions = False
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if chosen != "console":
        shared.append(structlog.processors.format_exc_info)
    shared.append(_redact_urls)
    structlog.configure(
        processors=[*shared, *_renderer(chosen)],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
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


def get_logger(name: str | None = None, **context: Any) -> Any:
    return structlog.get_logger(name).bind(**context) if context else structlog.get_logger(name)
