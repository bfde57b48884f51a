"""Property: whatever bytes come back, and however a real-shaped page is mangled, every Addic7ed
parser returns well-formed rows (numbers within PostgreSQL's int, text without NUL) or raises
NothingToParse. No ValueError, IndexError or anything else escapes, and no bad value gets out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from addicted_jobs.sandbox.data import Catalogue
from addicted_jobs.sandbox.pages import (
    page_bytes,
    panel_page,
    season_page,
    seasons_page,
    shows_page,
)
from addicted_jobs.upstream.addic7ed_dom import INT_MAX, SkippedRow
from addicted_jobs.upstream.addic7ed_html import (
    parse_download_usage,
    parse_season_table,
    parse_seasons,
    parse_shows,
)
from addicted_jobs.upstream.errors import NothingToParse
from addicted_jobs.upstream.models import QUALITY_HD, DownloadUsage, ParsedEpisode, ParsedShow

CATALOGUE = Catalogue(40, seed=13)
PAGES = [
    page_bytes(shows_page(CATALOGUE)),
    page_bytes(seasons_page(CATALOGUE, 5)),
    page_bytes(seasons_page(CATALOGUE, 7, hostile=True)),
    page_bytes(season_page(CATALOGUE, 43, 8)),  # the two smallest season pages: ~10 kB
    page_bytes(season_page(CATALOGUE, 5, 2, hostile=True)),
    page_bytes(panel_page(12, 40, "someone")),
]
# Pieces that break markup, numbers or text in the ways a hostile or broken page could.
SNIPPETS = [
    b"<table>", b"</table>", b"<tr>", b"</tr>", b"<td>", b"</td>", b"<th>", b"<option>",
    b"</option>", b"<select id=qsiSeason>", b"</select>", b'<div id="season">', b"<!--", b"-->",
    b"99999999999", b"-1", "²".encode(), "١٢".encode(), b"1_0", b"\x00", b"&#0;", b"&#x0;",
    b"&", b"&amp", b"%", b"1e999%", b"9" * 400, b"<a href='/updated/1/2/99999999999'>",
    b"<a href=/original/1/2>", b'value="', b"\xff\xfe", b"\xe9", b"<script>", b"<textarea>",
]  # fmt: skip
_URI = re.compile(r"^/(?:updated/\d+|original)/\d+/\d+/?$")


@st.composite
def mangled_pages(draw: st.DrawFn) -> bytes:
    page = bytearray(draw(st.sampled_from(PAGES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(page)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "truncate", "digits"]))
        if kind == "insert":
            page[at:at] = draw(st.sampled_from(SNIPPETS) | st.binary(max_size=12))
        elif kind == "delete":
            del page[at : at + draw(st.integers(1, 200))]
        elif kind == "duplicate":
            page[at:at] = page[at : at + draw(st.integers(1, 400))]
        elif kind == "truncate":
            del page[at:]
        else:  # rewrite the digits of one number
            match = re.compile(rb"\d+").search(bytes(page), at)
            if match:
                page[match.start() : match.end()] = draw(st.sampled_from(SNIPPETS))
    return bytes(page)


def _text_ok(text: str) -> bool:
    return isinstance(text, str) and "\x00" not in text


def _check_shows(shows: list[ParsedShow]) -> None:
    for show in shows:
        assert 1 <= show.external_id <= INT_MAX and _text_ok(show.name)


def _check_seasons(seasons: list[int]) -> None:
    assert len(seasons) == len(set(seasons))
    assert all(0 <= n <= INT_MAX for n in seasons)


def _check_table(episodes: list[ParsedEpisode]) -> None:
    for episode in episodes:
        assert 0 <= episode.season <= INT_MAX and 0 <= episode.number <= INT_MAX
        assert _text_ok(episode.title) and episode.external_id.isdigit() and episode.subtitles
        for sub in episode.subtitles:
            assert 0 <= sub.version <= INT_MAX
            assert math.isfinite(sub.completion_pct) and 0 <= sub.completion_pct <= 100
            assert sub.completed == (sub.completion_pct >= 100)
            assert sub.qualities in (0, QUALITY_HD) and _URI.match(sub.download_uri)
            assert sub.episode_external_id.isdigit()
            for text in (sub.scene, sub.language, sub.download_uri):
                assert _text_ok(text)


def _check_usage(usage: DownloadUsage) -> None:
    assert 0 <= usage.used <= INT_MAX and 0 <= usage.total <= INT_MAX


def _ignore(_: SkippedRow) -> None:
    pass


PARSERS: list[tuple[Callable[[str], Any], Callable[[Any], None]]] = [
    (lambda html: parse_shows(html, on_skip=_ignore), _check_shows),
    (lambda html: parse_seasons(html, on_skip=_ignore), _check_seasons),
    (lambda html: parse_season_table(html, str, on_skip=_ignore), _check_table),
    (parse_download_usage, _check_usage),
]


def _every_parser_is_total(html: str) -> None:
    for parse, check in PARSERS:
        try:
            result = parse(html)
        except NothingToParse:
            continue
        check(result)


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(body: bytes) -> None:
    # As the client reads a page with no charset: UTF-8, invalid bytes replaced.
    _every_parser_is_total(body.decode("utf-8", errors="replace"))


@FAST
@given(st.text(max_size=2048))
def test_arbitrary_text(html: str) -> None:
    _every_parser_is_total(html)


@FAST
@given(mangled_pages())
def test_mangled_real_shaped_pages(body: bytes) -> None:
    _every_parser_is_total(body.decode("utf-8", errors="replace"))


def test_the_unmangled_pages_read_in_full() -> None:
    # The property must not hold only because everything is NothingToParse.
    shows_html, seasons_html, hostile_list, table_html, hostile_table, panel_html = (
        page.decode("utf-8", errors="replace") for page in PAGES
    )
    assert len(parse_shows(shows_html)) == 40
    assert parse_seasons(seasons_html) == CATALOGUE.seasons(5)
    assert parse_seasons(hostile_list, on_skip=_ignore) == CATALOGUE.seasons(7)
    assert len(parse_season_table(table_html)) == len(CATALOGUE.episodes(43, 8) or ())
    assert len(parse_season_table(hostile_table, on_skip=_ignore)) == len(
        CATALOGUE.episodes(5, 2) or ()
    )
    assert parse_download_usage(panel_html) == DownloadUsage(12, 40)
