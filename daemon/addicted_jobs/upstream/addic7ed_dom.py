"""How the Addic7ed parsers read a value out of the DOM: as a browser does, then range-checked.

A browser's `option.value` is the `value` attribute as written, or, when there is none, the
option's text with ASCII whitespace stripped and collapsed; link targets are `href` as written;
cell text is the element's text content with entities decoded. Numbers are ASCII digits only and
must fit the PostgreSQL column they are stored in; text never carries NUL, which PostgreSQL's
text type refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from selectolax.lexbor import LexborNode

from addicted_jobs.upstream.models import PG_INT_MAX

log = structlog.get_logger(__name__)

# PostgreSQL `int`, the type of seasons.number, episodes.season/number and subtitles.version: a
# larger number from a page would fail the whole season's write with a DataError on every retry.
INT_MAX = PG_INT_MAX
_ASCII_SPACE = " \t\n\r\f"
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
_WHITESPACE_RUN = re.compile(r"[\t\n\r\f]| {2}")
# Python's int() also takes "١٢", "１２" and "1_000", and str.isdigit() accepts "²" which int()
# then refuses; the site (and .NET's int.Parse the original used) means ASCII digits.
_ASCII_INT = re.compile(r"[ \t\n\r\f]*\+?0*([0-9]{1,10})[ \t\n\r\f]*")


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """One row (or option) a parser could not read and left out of its result.

    `row` counts from 0 in page order (the header row and spacer rows included), `cell` names
    the column that failed, `reason` says what it held and what was expected.
    """

    page: str
    row: int
    cell: str
    reason: str


OnSkip = Callable[[SkippedRow], None]


class Unreadable(Exception):
    """A cell that cannot be read; the row is skipped (internal to the parsers)."""

    def __init__(self, cell: str, reason: str) -> None:
        super().__init__(f"{cell}: {reason}")
        self.cell = cell
        self.reason = reason


def log_skipped(skipped: SkippedRow) -> None:
    """The default OnSkip: one warning naming the page, the row and the cell."""
    log.warning(
        "unreadable row skipped",
        page=skipped.page,
        row=skipped.row,
        cell=skipped.cell,
        reason=skipped.reason,
    )


def option_text(option: LexborNode) -> str:
    """HTMLOptionElement.text: the text content, ASCII whitespace stripped and collapsed."""
    text = clean(option.text_lexbor()).strip(_ASCII_SPACE)
    if _WHITESPACE_RUN.search(text) is None:  # the regex only runs when there is work for it
        return text
    return _WHITESPACE.sub(" ", text)


def option_value(option: LexborNode) -> str:
    """HTMLOptionElement.value: the attribute as written, else the option's text.

    Addic7ed writes its season options as `<option>2</option>`, with no value attribute.
    """
    value = option.attributes.get("value")
    # `<option value>` (no "=") has the attribute with an empty value; lexbor gives None for it.
    if value is None and "value" not in option.attributes:
        return option_text(option)
    return clean(value or "")


def clean(text: str) -> str:
    """Text safe for PostgreSQL: NUL (which lexbor may pass through) becomes U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def read_int(text: str, cell: str, *, low: int = 0, high: int = INT_MAX) -> int:
    """An integer in [low, high] written in ASCII digits, surrounding whitespace allowed.

    Raises Unreadable naming `cell`, the text and the expected range otherwise.
    """
    match = _ASCII_INT.fullmatch(text)
    if match is not None:
        number = int(match.group(1))
        if low <= number <= high:
            return number
    shown = text.strip(_ASCII_SPACE)
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    raise Unreadable(cell, f"expected a whole number from {low} to {high}, got {shown!r}")
