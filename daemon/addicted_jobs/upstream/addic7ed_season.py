"""The season table of ajax_loadShow.php (spec 4.3), read row by row.

The real page is a fragment (no <html>): `#season` holds `<form name="multidl">`, a layout table,
and inside it the episode table. Its subtitle rows have 11 cells (the 11th a multi-download
checkbox), episodes are separated by empty `<tr height="2">` rows and a 2-cell row ends the table.
A row that cannot be read is skipped and reported; the others still apply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

from addicted_jobs.upstream.addic7ed_dom import (
    OnSkip,
    SkippedRow,
    Unreadable,
    clean,
    log_skipped,
    read_int,
)
from addicted_jobs.upstream.errors import NothingToParse
from addicted_jobs.upstream.models import QUALITY_HD, ParsedEpisode, ParsedSubtitle

SEASON_PAGE = "ajax_loadShow.php"

# The original's `(?<completion>\d+\.?\d+)%` needed two digits, so "5%" read as complete, and it
# left Completed false for "100%". One or more digits, optional decimals, fixes both.
# Anchored at the start of a digit run, so a long run is scanned once, not from every digit.
_COMPLETION = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*%")
# The original dropped "/updated/" and "/original/" then took the second segment, which for
# "/original/{episodeId}/{version}" is the version. Both shapes end in episode id then version.
_HREF = re.compile(r"^/(?:updated/\d{1,10}|original)/(\d{1,20})/(\d{1,20})/?$")
_COLUMNS = 10  # the 11th cell, the multi-download checkbox, is not read


def _tag_ids(*names: str) -> frozenset[int]:
    # Lexbor's numeric tag ids: comparing ints is several times cheaper than reading `.tag`.
    document = LexborHTMLParser(
        "<table><thead><tr><th></th></tr></thead><tbody><tr><td></td></tr></tbody>"
        "<tfoot></tfoot></table>"
    )
    return frozenset(node.tag_id for name in names for node in document.css(name))


_CELLS = _tag_ids("td", "th")
_ROW = next(iter(_tag_ids("tr")))
_ROW_GROUPS = _tag_ids("thead", "tbody", "tfoot")


def normalize_scene(scene: str) -> str:
    """Turn Addic7ed's "+"-joined release groups into a ", "-joined list."""
    parts = [part.strip() for part in scene.split("+")]
    kept = [part for part in parts if part]
    return ", ".join(kept) if kept else scene.strip()


def _table_rows(table: LexborNode) -> Iterator[LexborNode]:
    # Only this table's own rows: `css("tr")` would also walk into nested tables.
    for child in table.iter():
        if child.tag_id == _ROW:
            yield child
        elif child.tag_id in _ROW_GROUPS:
            for row in child.iter():
                if row.tag_id == _ROW:
                    yield row


def _cells(row: LexborNode) -> list[LexborNode]:
    return [cell for cell in row.iter() if cell.tag_id in _CELLS]


def _episode_table(document: LexborHTMLParser) -> LexborNode | None:
    # The spec (4.3) says "the first table in #season"; on the real page that is the layout table
    # around the episode table, and the real site wins. So: the first table under a #season with
    # a row of subtitle width, else (a season without subtitles) the first with no table inside.
    fallback: LexborNode | None = None
    for season in document.css("#season"):  # an id the fragment may repeat
        for table in season.css("table"):
            if any(len(_cells(row)) >= _COLUMNS for row in _table_rows(table)):
                return table
            if fallback is None and table.css_first("table") is None:
                fallback = table
    return fallback


class _RowReader:
    """Turns table rows into subtitles, memoising what repeats across rows of one page."""

    def __init__(self, language_code: Callable[[str], str | None] | None) -> None:
        self._language_code = language_code
        self._scenes: dict[str, str] = {}
        self._codes: dict[str, str | None] = {}

    def read(self, cells: list[LexborNode]) -> tuple[int, int, str, ParsedSubtitle]:
        """(season, episode number, title, subtitle) of one row; raises Unreadable."""
        texts = [clean(cell.text_lexbor()) for cell in cells[:9]]  # textContent, entities decoded
        season = read_int(texts[0], "season")
        number = read_int(texts[1], "episode")
        link = next(cells[9].iter(), None)  # the cell's first element child, the <a>
        href = (link.attributes.get("href") or "") if link is not None else ""
        match = _HREF.match(href)
        if match is None:
            raise Unreadable("download", f"expected a /updated/ or /original/ link, got {href!r}")
        version = read_int(match.group(2), "download (version)")
        status = _COMPLETION.search(texts[5]) if "%" in texts[5] else None
        if status is None:
            # Addic7ed writes a finished subtitle as plain "Completed".
            completed, pct = True, 100.0
        else:
            pct = float(status.group(1)) if len(status.group(1)) <= 24 else math.inf
            if pct > 100.0:
                raise Unreadable("status", f"expected a percentage up to 100, got {texts[5]!r}")
            completed = pct >= 100.0
        language = texts[3].strip()
        scene = self._scenes.get(texts[4])
        if scene is None:
            scene = self._scenes[texts[4]] = normalize_scene(texts[4])
        subtitle = ParsedSubtitle(
            scene=scene,
            version=version,
            completed=completed,
            completion_pct=pct,
            # Any text, whitespace included, marks the flag: that is how the original read them.
            hearing_impaired=len(texts[6]) > 0,
            corrected=len(texts[7]) > 0,
            qualities=QUALITY_HD if len(texts[8]) > 0 else 0,
            download_uri=href,
            language=language,
            language_code=self._code(language),
            episode_external_id=match.group(1),
        )
        return season, number, texts[2], subtitle

    def _code(self, language: str) -> str | None:
        if self._language_code is None:
            return None
        if language not in self._codes:
            self._codes[language] = self._language_code(language)
        return self._codes[language]


def parse_season_table(
    html: str,
    language_code: Callable[[str], str | None] | None = None,
    *,
    on_skip: OnSkip = log_skipped,
) -> list[ParsedEpisode]:
    """Read the episode table of a season page into episodes, in page order.

    `language_code` maps a language label such as "Portuguese (Brazilian)" to a culture name.
    Rows that cannot be read go to `on_skip` (by default a warning). Raises NothingToParse when
    there is no episode table, when the page is cut off, or when no row at all could be read.
    """
    table = _episode_table(LexborHTMLParser(html))
    if table is None:
        raise NothingToParse(SEASON_PAGE, "the episode table (#season table)")
    _require_closed(html, "table")
    reader = _RowReader(language_code)
    grouped: dict[tuple[int, int], tuple[str, list[ParsedSubtitle]]] = {}
    first_skip: SkippedRow | None = None
    for row_index, row in enumerate(_table_rows(table)):
        if row_index == 0:
            continue  # the header row
        cells = _cells(row)
        if len(cells) <= 2:
            continue  # spacer, message and trailer rows
        try:
            if len(cells) < _COLUMNS:
                raise Unreadable("row", f"expected {_COLUMNS} cells or more, found {len(cells)}")
            season, number, title, subtitle = reader.read(cells)
        except Unreadable as exc:
            skipped = SkippedRow(SEASON_PAGE, row_index, exc.cell, exc.reason)
            first_skip = first_skip or skipped
            on_skip(skipped)
            continue
        entry = grouped.get((season, number))
        if entry is None:
            grouped[(season, number)] = (title, [subtitle])
        else:
            entry[1].append(subtitle)
    if not grouped and first_skip is not None:
        raise NothingToParse(
            SEASON_PAGE,
            f"any readable row (row {first_skip.row}, {first_skip.cell}: {first_skip.reason})",
        )
    return [
        ParsedEpisode(
            season=season,
            number=number,
            title=title,
            external_id=subtitles[0].episode_external_id,
            subtitles=tuple(subtitles),
        )
        for (season, number), (title, subtitles) in grouped.items()
    ]


def _require_closed(html: str, tag: str) -> None:
    # A lenient parser closes a cut-off element silently and would hand back only the rows before
    # the cut. Addic7ed always closes these elements, so a missing close tag means a broken page.
    if f"</{tag}>" not in html and f"</{tag.upper()}>" not in html:
        raise NothingToParse(SEASON_PAGE, f"the closing </{tag}> (the page is truncated)")
