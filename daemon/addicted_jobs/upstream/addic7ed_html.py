"""Pure parsing of Addic7ed pages (no I/O): show list, season list, season table, quota panel.

Values are read as a browser reads them (addic7ed_dom). A row or option that cannot be read is
skipped and reported to `on_skip`; a parser raises NothingToParse only for a page it cannot read
at all (the element missing, the page cut off, or not one readable row).
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from addicted_jobs.upstream.addic7ed_dom import (
    INT_MAX,
    OnSkip,
    SkippedRow,
    Unreadable,
    log_skipped,
    option_text,
    option_value,
    read_int,
)
from addicted_jobs.upstream.addic7ed_season import SEASON_PAGE, normalize_scene, parse_season_table
from addicted_jobs.upstream.errors import NothingToParse
from addicted_jobs.upstream.models import DownloadUsage, ParsedShow

__all__ = [
    "PANEL_PAGE",
    "SEASONS_PAGE",
    "SEASON_PAGE",
    "SHOWS_PAGE",
    "SkippedRow",
    "normalize_scene",
    "parse_download_usage",
    "parse_season_table",
    "parse_seasons",
    "parse_shows",
]

SHOWS_PAGE = "ajax_getShows.php"
SEASONS_PAGE = "ajax_getSeasons.php"
PANEL_PAGE = "panel.php"

# The original's `(\d{1,2}) of (\d{1,2})` mis-read quotas of three digits or more.
# Anchored at the start of a digit run, so a long run is scanned once, not from every digit.
_USAGE = re.compile(r"(?<!\d)(\d+)\s+of\s+(\d+)", re.IGNORECASE)
# A <select ...> start tag; quoted attribute values may contain ">".
_SELECT_TAG = re.compile(r"""<select\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_SELECT_END = re.compile(r"</select\s*>", re.IGNORECASE)


def _select_options(html: str, select_id: str, page: str) -> list[LexborNode]:
    # Lexbor resets a <select> for every <option> inserted into it, which makes a 10,000-show list
    # take half a second (quadratic). The options are cut out as text and parsed outside a
    # <select>, where the same markup builds the same <option> nodes in linear time.
    for tag in _SELECT_TAG.finditer(html):
        # The id attribute itself, not "data-id" or "qsShowX".
        found = re.search(
            rf"""(?<![\w-])(?i:id)\s*=\s*(["']?){select_id}\1(?=[\s/>])""", tag.group(0)
        )
        if found is None:
            continue
        end = _SELECT_END.search(html, tag.end())
        if end is None:
            raise NothingToParse(page, "the closing </select> (the page is truncated)")
        return LexborHTMLParser(html[tag.end() : end.start()]).css("option")
    raise NothingToParse(page, f"the list select#{select_id}")


def _none_readable(page: str, first: SkippedRow) -> NothingToParse:
    return NothingToParse(
        page, f"any readable option (option {first.row}, {first.cell}: {first.reason})"
    )


def parse_shows(
    html: str, max_shows: int | None = None, *, on_skip: OnSkip = log_skipped
) -> list[ParsedShow]:
    """Every show of `select#qsShow` as (id, name), skipping the placeholder (value 0).

    The name is the option's text as a browser gives it: whitespace stripped and collapsed.
    An option whose value is not a show id from 1 to 2^31-1 is skipped and reported. More than
    `max_shows` options is implausible for a real list: NothingToParse, before any is built.
    """
    shows: list[ParsedShow] = []
    first: SkippedRow | None = None
    options = _select_options(html, "qsShow", SHOWS_PAGE)
    if max_shows is not None and len(options) > max_shows + 1:  # + the placeholder
        raise NothingToParse(
            SHOWS_PAGE,
            f"a plausible show list (got {len(options) - 1} shows, more than the "
            f"{max_shows} of [addic7ed] max_shows)",
        )
    for index, option in enumerate(options):
        try:
            external_id = read_int(option_value(option), "value")
        except Unreadable as exc:
            skipped = SkippedRow(SHOWS_PAGE, index, exc.cell, exc.reason)
            first = first or skipped
            on_skip(skipped)
            continue
        if external_id != 0:
            shows.append(ParsedShow(external_id=external_id, name=option_text(option)))
    if not shows and first is not None:
        raise _none_readable(SHOWS_PAGE, first)
    return shows


def parse_seasons(html: str, *, on_skip: OnSkip = log_skipped) -> list[int]:
    """The season numbers of `select#qsiSeason`, in page order, each once.

    Addic7ed writes `<option value="0">Season</option><option>1</option><option>2</option>`:
    the numbers are the options' values as a browser reads them, which without a value attribute
    is the text. The placeholder is the option whose text is "Season" (spec 4.3), or, as the site
    may translate that word, whose value is 0 while its text is not a number.
    """
    options = _select_options(html, "qsiSeason", SEASONS_PAGE)
    seasons: list[int] = []
    first: SkippedRow | None = None
    for index, option in enumerate(options):
        text, value = option_text(option), option_value(option)
        if text.lower() == "season" or (value.strip() == "0" and not text.isdecimal()):
            continue
        try:
            number = read_int(value, "value")
        except Unreadable as exc:
            skipped = SkippedRow(SEASONS_PAGE, index, exc.cell, exc.reason)
            first = first or skipped
            on_skip(skipped)
            continue
        if number not in seasons:
            seasons.append(number)
    if not seasons:
        if first is not None:
            raise _none_readable(SEASONS_PAGE, first)
        raise NothingToParse(SEASONS_PAGE, "any season (the list holds only a placeholder)")
    return seasons


def parse_download_usage(html: str) -> DownloadUsage:
    """Read "N of M" from the quota link of panel.php; raises NothingToParse without one."""
    # Exactly `mydownloads.php`: the menu's "/mydownloads.php" link must not match.
    link = LexborHTMLParser(html).css_first('.tabel a[href="mydownloads.php"]')
    if link is None:
        raise NothingToParse(PANEL_PAGE, "the download quota link (.tabel a[href=mydownloads.php])")
    text = link.text(deep=True)
    match = _USAGE.search(text)
    try:
        if match is None:
            raise Unreadable("quota link", "expected 'N of M'")
        used = read_int(match.group(1), "used", high=INT_MAX)
        total = read_int(match.group(2), "total", high=INT_MAX)
    except Unreadable as exc:
        shown = text.strip()[:80]
        raise NothingToParse(
            PANEL_PAGE, f"'N of M' in the quota link ({exc}; got {shown!r})"
        ) from None
    return DownloadUsage(used=used, total=total)
