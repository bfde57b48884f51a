"""Pure parsing of Addic7ed pages (no I/O): show list, season list, season table, quota panel.

Every parser reads a whole page or raises NothingToParse; it never returns a partial result.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from selectolax.lexbor import LexborHTMLParser, LexborNode

from daemon.upstream.errors import NothingToParse
from daemon.upstream.models import (
    QUALITY_HD,
    DownloadUsage,
    ParsedEpisode,
    ParsedShow,
    ParsedSubtitle,
)

SHOWS_PAGE = "ajax_getShows.php"
SEASONS_PAGE = "ajax_getSeasons.php"
SEASON_PAGE = "ajax_loadShow.php"
PANEL_PAGE = "panel.php"

# The original's `(?<completion>\d+\.?\d+)%` needed two digits, so "5%" read as complete, and it
# left Completed false for "100%". One or more digits, optional decimals, fixes both.
_COMPLETION = re.compile(r"(\d+(?:\.\d+)?)\s*%")
# The original's `(\d{1,2}) of (\d{1,2})` mis-read quotas of three digits or more.
_USAGE = re.compile(r"(\d+)\s+of\s+(\d+)", re.IGNORECASE)
# The original dropped "/updated/" and "/original/" then took the second segment, which for
# "/original/{episodeId}/{version}" is the version. Both shapes end in episode id then version.
_HREF = re.compile(r"^/(?:updated/\d+|original)/(\d+)/(\d+)/?$")
_ASCII_SPACE = " \t\n\r\f"
_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
_WHITESPACE_RUN = re.compile(r"[\t\n\r\f]| {2}")
# A <select ...> start tag; quoted attribute values may contain ">".
_SELECT_TAG = re.compile(r"""<select\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_SELECT_END = re.compile(r"</select\s*>", re.IGNORECASE)

_COLUMNS = 10


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


def _option_text(option: LexborNode) -> str:
    # Same as the DOM's HTMLOptionElement.text, which the original read: ASCII whitespace
    # stripped and collapsed. The regex only runs when there is something to collapse.
    text = option.text_lexbor().strip(_ASCII_SPACE)
    if _WHITESPACE_RUN.search(text) is None:
        return text
    return _WHITESPACE.sub(" ", text)


def _require_closed(html: str, tag: str, page: str) -> None:
    # A lenient parser closes a cut-off element silently and would hand back only the rows before
    # the cut. Addic7ed always closes these elements, so a missing close tag means a broken page.
    if f"</{tag}>" not in html and f"</{tag.upper()}>" not in html:
        raise NothingToParse(page, f"the closing </{tag}> (the page is truncated)")


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


def parse_shows(html: str, max_shows: int | None = None) -> list[ParsedShow]:
    """Read every show of `select#qsShow`, skipping the placeholder option 0. More than
    `max_shows` options is implausible for a real list: NothingToParse, before any is built."""
    shows: list[ParsedShow] = []
    options = _select_options(html, "qsShow", SHOWS_PAGE)
    if max_shows is not None and len(options) > max_shows + 1:  # + the placeholder
        raise NothingToParse(
            SHOWS_PAGE,
            f"a plausible show list (got {len(options) - 1} shows, more than the "
            f"{max_shows} of [addic7ed] max_shows)",
        )
    for index, option in enumerate(options):
        value = option.attributes.get("value") or ""
        try:
            external_id = int(value)
        except ValueError:
            raise NothingToParse(
                SHOWS_PAGE, f"a numeric value on option {index} (got {value!r})"
            ) from None
        if external_id != 0:
            shows.append(ParsedShow(external_id=external_id, name=_option_text(option)))
    return shows


def parse_seasons(html: str) -> list[int]:
    """Read the season numbers of `select#qsiSeason`, skipping the "Season" placeholder."""
    options = _select_options(html, "qsiSeason", SEASONS_PAGE)
    seasons: list[int] = []
    for index, option in enumerate(options):
        text = _option_text(option)
        value = (option.attributes.get("value") or "").strip()
        if not value.lstrip("-").isdigit():
            if len(options) == 1:
                raise NothingToParse(SEASONS_PAGE, "any season (only a placeholder option)")
            if text.lower() == "season":
                continue
            raise NothingToParse(SEASONS_PAGE, f"a numeric value on option {index} ({value!r})")
        if text.lower() != "season":
            seasons.append(int(value))
    return seasons


def _table_rows(table: LexborNode) -> Iterator[LexborNode]:
    # Only this table's own rows: `css("tr")` would also walk into nested tables.
    for child in table.iter():
        if child.tag_id == _ROW:
            yield child
        elif child.tag_id in _ROW_GROUPS:
            for row in child.iter():
                if row.tag_id == _ROW:
                    yield row


def _int_cell(text: str, row: int, column: str) -> int:
    try:
        return int(text)  # int() itself allows the surrounding whitespace
    except ValueError:
        raise NothingToParse(
            SEASON_PAGE, f"a number in the {column} cell of row {row} (got {text.strip()!r})"
        ) from None


class _RowReader:
    """Turns table rows into subtitles, memoising what repeats across rows of one page."""

    def __init__(self, language_code: Callable[[str], str | None] | None) -> None:
        self._language_code = language_code
        self._scenes: dict[str, str] = {}
        self._codes: dict[str, str | None] = {}

    def read(self, cells: list[LexborNode], row: int) -> tuple[int, int, str, ParsedSubtitle]:
        texts = [cell.text_lexbor() for cell in cells[:9]]  # textContent, the fastest read
        season = _int_cell(texts[0], row, "season")
        number = _int_cell(texts[1], row, "episode")
        link = next(cells[9].iter(), None)  # the cell's first element child, the <a>
        href = (link.attributes.get("href") or "") if link is not None else ""
        match = _HREF.match(href)
        if match is None:
            raise NothingToParse(SEASON_PAGE, f"a download link in row {row} (got {href!r})")
        status = _COMPLETION.search(texts[5]) if "%" in texts[5] else None
        if status is None:
            # Addic7ed writes a finished subtitle as plain "Completed".
            completed, pct = True, 100.0
        else:
            pct = float(status.group(1))
            completed = pct >= 100.0
        language = texts[3].strip()
        scene = self._scenes.get(texts[4])
        if scene is None:
            scene = self._scenes[texts[4]] = normalize_scene(texts[4])
        subtitle = ParsedSubtitle(
            scene=scene,
            version=int(match.group(2)),
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
    html: str, language_code: Callable[[str], str | None] | None = None
) -> list[ParsedEpisode]:
    """Read the `#season table` of a season page into episodes, in page order.

    `language_code` maps a language label such as "Portuguese (Brazilian)" to a culture name.
    """
    season_div = LexborHTMLParser(html).css_first("#season")
    table = season_div.css_first("table") if season_div is not None else None
    if table is None:
        raise NothingToParse(SEASON_PAGE, "the episode table (#season table)")
    _require_closed(html, "table", SEASON_PAGE)
    reader = _RowReader(language_code)
    grouped: dict[tuple[int, int], tuple[str, list[ParsedSubtitle]]] = {}
    for row_index, row in enumerate(_table_rows(table)):
        if row_index == 0:
            continue  # the header row
        cells = [cell for cell in row.iter() if cell.tag_id in _CELLS]
        if len(cells) <= 2:
            continue  # spacer and message rows
        if len(cells) < _COLUMNS:
            raise NothingToParse(
                SEASON_PAGE, f"{_COLUMNS} cells in row {row_index} (found {len(cells)})"
            )
        season, number, title, subtitle = reader.read(cells, row_index)
        entry = grouped.get((season, number))
        if entry is None:
            grouped[(season, number)] = (title, [subtitle])
        else:
            entry[1].append(subtitle)
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


def parse_download_usage(html: str) -> DownloadUsage:
    """Read "N of M" from the quota link of panel.php."""
    # Exactly `mydownloads.php`: the menu's "/mydownloads.php" link must not match.
    link = LexborHTMLParser(html).css_first('.tabel a[href="mydownloads.php"]')
    if link is None:
        raise NothingToParse(PANEL_PAGE, "the download quota link (.tabel a[href=mydownloads.php])")
    text = link.text(deep=True)
    match = _USAGE.search(text)
    if match is None:
        raise NothingToParse(PANEL_PAGE, f"'N of M' in the quota link (got {text.strip()!r})")
    return DownloadUsage(used=int(match.group(1)), total=int(match.group(2)))
