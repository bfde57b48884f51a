"""The markup Addic7ed really sends, each variant written by hand from its description (issue 13),
read as a browser reads it; and hostile cells, which are skipped and never escape as ValueError.
"""

from __future__ import annotations

import pytest

from addicted_jobs.upstream.addic7ed_dom import SkippedRow
from addicted_jobs.upstream.addic7ed_download import check_subtitle_body, is_html_page
from addicted_jobs.upstream.addic7ed_html import (
    parse_download_usage,
    parse_season_table,
    parse_seasons,
    parse_shows,
)
from addicted_jobs.upstream.errors import DownloadLimitExceeded, NotASubtitle, NothingToParse
from addicted_jobs.upstream.models import QUALITY_HD

HEAD = "<tr>" + "".join(f"<th>{h}</th>" for h in "S E Episode Language Version Status HI Corrected HD Download".split()) + "<th></th></tr>"  # fmt: skip


def _seasons(options: str) -> str:
    return (
        '<a href="/show/6265"><b>Show</b></a> \n\t\t<select name="qsiSeason" id="qsiSeason" '
        f'onchange="seasonChange(6265,-1);">{options}</select>'
    )


def _row(*cells: str) -> str:
    return "<tr class=\"epeven completed\">" + "".join(f'<td class="c">{c}</td>' for c in cells) + "</tr>"  # fmt: skip


def _real_row(
    status: str = "Completed",
    flags: tuple[str, str, str] = ("", "", ""),
    *,
    number: str = "1",
    scene: str = "WEB",
    title: str = "Pilot",
    href: str = "/updated/1/4001/0",
) -> str:
    link = f'<a href="{href}"><strong>Download</strong></a>'
    box = f'<input type="checkbox" name="multishow[]" id="multishow" value="{href}">'
    return _row("1", number, f'<a href="/serie/X/1/1/Pilot">{title}</a>', "English", scene, status, *flags, link, box)  # fmt: skip


def _real_table(*rows: str) -> str:
    """The real fragment: no <html>, #season > form multidl > layout table > episode table."""
    body = "".join(rows)
    return (
        '<div id="season"><form name="multidl" action="/downloadmultiple.php" method="post">'
        '<table class="tabel95"><tr><td><table class="tabel" border="0">'
        f"<thead>{HEAD}</thead><tbody>{body}"
        '<tr><td colspan="10"></td><td><input type="submit" value="Download"></td></tr>'
        "</tbody></table></td></tr></table></form></div>"
    )


def test_season_options_without_value_give_their_text() -> None:
    html = _seasons('<option value="0">Season</option><option>1</option><option>2</option>')
    assert parse_seasons(html) == [1, 2]


@pytest.mark.parametrize(
    ("options", "seasons"),
    [
        ("<option>\n  1\n</option><option>\t2 </option>", [1, 2]),  # text stripped, as the DOM does
        ("<option>1</option><option selected>2</option>", [1, 2]),  # after a quick search
        ('<option value="0">Temporada</option><option>3</option>', [3]),  # a translated placeholder
        ("<option>0</option><option>1</option>", [0, 1]),  # season 0 (specials) is a season
        ('<option value="0">Season</option><option value="4">Four</option>', [4]),
        ("<option>2</option><option>2</option><option>1</option>", [2, 1]),  # once each
    ],
)
def test_season_option_values(options: str, seasons: list[int]) -> None:
    assert parse_seasons(_seasons(options)) == seasons


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        ('<option value="²">²</option>', "got '²'"),  # isdigit() says yes, int() says no
        ("<option>99999999999</option>", "from 0 to 2147483647, got '99999999999'"),
        ("<option>١٢</option>", "got '١٢'"),  # int() would read Arabic-Indic digits as 12
        ("<option>1_000</option>", "got '1_000'"),
        ("<option>-1</option>", "got '-1'"),
        ('<option value="">3</option>', "got ''"),  # an empty value attribute is the value
        ("<option>" + "9" * 5000 + "</option>", "got '9999"),
    ],
)
def test_hostile_season_options_are_skipped_and_named(hostile: str, reason: str) -> None:
    skipped: list[SkippedRow] = []
    html = _seasons(f'<option value="0">Season</option>{hostile}<option>2</option>')
    assert parse_seasons(html, on_skip=skipped.append) == [2]
    [skip] = skipped
    assert (skip.page, skip.row, skip.cell) == ("ajax_getSeasons.php", 1, "value")
    assert reason in skip.reason
    with pytest.raises(NothingToParse, match=r"any readable option \(option 1, value"):
        parse_seasons(
            _seasons(f'<option value="0">Season</option>{hostile}'), on_skip=skipped.append
        )


def test_show_names_as_a_browser_shows_them() -> None:
    names = (
        "  Leading",
        "Trailing  ",
        "Doubled  Space",
        " Тайна   следствия ",
        "비밀의 숲",
        "Kaiji‼",
    )
    options = "".join(f'<option value="{i}" >{n}</option>' for i, n in enumerate(names, 1))
    html = f'<select name="qsShow" id="qsShow"><option value="0">[Select a show]</option>{options}<option value="9">Law &amp; Order</option></select>'  # fmt: skip
    assert [(s.external_id, s.name) for s in parse_shows(html)] == [
        (1, "Leading"),
        (2, "Trailing"),
        (3, "Doubled Space"),
        (4, "Тайна следствия"),
        (5, "비밀의 숲"),
        (6, "Kaiji‼"),
        (9, "Law & Order"),
    ]


def test_a_hostile_show_option_is_skipped_and_the_list_still_read() -> None:
    skipped: list[SkippedRow] = []
    html = '<select id="qsShow"><option value="0">[Select a show]</option><option value="²">X</option><option value="99999999999">Y</option><option value="7">Ok</option></select>'  # fmt: skip
    assert [s.external_id for s in parse_shows(html, on_skip=skipped.append)] == [7]
    assert [(s.page, s.row, s.cell) for s in skipped] == [
        ("ajax_getShows.php", 1, "value"),
        ("ajax_getShows.php", 2, "value"),
    ]


def test_the_real_season_table_shape() -> None:
    skipped: list[SkippedRow] = []
    html = _real_table(
        _real_row(),
        _real_row(href="/original/4001/1"),
        '<tr height="2"></tr>',
        _real_row(number="2", href="/updated/1/4002/0"),
        '<tr height="2"></tr>',
    )
    episodes = parse_season_table(html, on_skip=skipped.append)
    assert skipped == []  # spacers, header and the 2-cell trailer are not unreadable rows
    assert [(e.number, e.external_id, len(e.subtitles)) for e in episodes] == [(1, "4001", 2), (2, "4002", 1)]  # fmt: skip
    assert [s.download_uri for s in episodes[0].subtitles] == ["/updated/1/4001/0", "/original/4001/1"]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "completed", "pct"),
    [
        ("Completed", True, 100.0),
        ("45.50% Completed", False, 45.5),
        ("5.25% Completed", False, 5.25),
        ("0.00% Completed", False, 0.0),
    ],
)
def test_real_status_values(status: str, completed: bool, pct: float) -> None:
    [episode] = parse_season_table(_real_table(_real_row(status)))
    assert (episode.subtitles[0].completed, episode.subtitles[0].completion_pct) == (completed, pct)


def test_flags_are_check_mark_entities_or_empty() -> None:
    html = _real_table(
        _real_row(flags=("&#10004;", "", "&#10004;")),
        _real_row(flags=("", "&#10004;", ""), href="/updated/8/4001/0"),
    )
    first, second = parse_season_table(html)[0].subtitles
    assert (first.hearing_impaired, first.corrected, first.qualities) == (True, False, QUALITY_HD)
    assert (second.hearing_impaired, second.corrected, second.qualities) == (False, True, 0)


def test_scene_and_title_text_is_the_decoded_text_content() -> None:
    long_list = "+".join(["NTb", "playWEB", "Kitsune", "FLUX", "CAKES", "EDITH", "GGEZ", "MiNX"])
    html = _real_table(
        _real_row(scene="WEB-DL & HDTV  ", title="Tom &amp; Jerry&#39;s"),
        _real_row(scene=f"{long_list}   ", number="2", href="/updated/1/4002/0"),
    )
    one, two = parse_season_table(html)
    assert one.subtitles[0].scene == "WEB-DL & HDTV" and one.title == "Tom & Jerry's"
    assert two.subtitles[0].scene == "NTb, playWEB, Kitsune, FLUX, CAKES, EDITH, GGEZ, MiNX"


def test_a_repeated_season_id_without_a_table_is_passed_over() -> None:
    html = '<div id="season"><span>Season 1</span></div>' + _real_table(_real_row())
    assert [e.number for e in parse_season_table(html)] == [1]


def test_hostile_season_rows_are_skipped_and_the_rest_applies() -> None:
    skipped: list[SkippedRow] = []
    html = _real_table(
        _real_row(number="99999999999"),
        _real_row(number="²"),
        _real_row(href="/updated/1/4001/" + "9" * 5000),
        _real_row(status="1" + "0" * 400 + "% Completed"),
        _real_row(number="3", href="/updated/1/4003/0"),
    )
    episodes = parse_season_table(html, on_skip=skipped.append)
    assert [e.number for e in episodes] == [3]
    assert [(s.row, s.cell) for s in skipped] == [
        (1, "episode"),
        (2, "episode"),
        (3, "download"),
        (4, "status"),
    ]


def test_a_panel_with_absurd_numbers_is_nothing_to_parse() -> None:
    link = "<a href='mydownloads.php'>" + "9" * 5000 + " of 40</a>"
    with pytest.raises(NothingToParse, match="panel.php"):
        parse_download_usage(f"<table class='tabel'><tr><td>{link}</td></tr></table>")


SRT = b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHello\r\n"


@pytest.mark.parametrize(
    ("body", "html"),
    [
        (SRT, False),
        (b"\xef\xbb\xbf" + SRT, False),
        ("1\r\n00:00:01,000 --> 00:00:02,000\r\nCafé\r\n".encode("latin-1"), False),
        (b"WEBVTT\n\n", False),
        (b"", False),
        (b"<!DOCTYPE html><html><body>x</body></html>", True),
        (b"\xef\xbb\xbf\r\n  <HTML lang=en>", True),
        (b"<!doctype HTML>", True),
    ],
)
def test_html_pages_are_told_from_subtitle_files(body: bytes, html: bool) -> None:
    assert is_html_page(body) is html


def test_a_limit_page_is_a_download_limit_and_other_pages_are_named() -> None:
    limit = b"<!DOCTYPE html><html><head><title>Addic7ed</title></head><body>Daily Download count exceeded</body></html>"  # fmt: skip
    with pytest.raises(DownloadLimitExceeded) as exceeded:
        check_subtitle_body("/updated/1/2/3", limit, "text/html", cookie_used=True)
    assert exceeded.value.cookie_used
    login = b"<html><head><title>Login - Addic7ed.com</title></head><body></body></html>"
    with pytest.raises(NotASubtitle) as other:
        check_subtitle_body("/updated/1/2/3", login, "text/html; charset=UTF-8", cookie_used=False)
    assert str(other.value) == (
        "download of /updated/1/2/3 answered an HTML page 'Login - Addic7ed.com' "
        f"(text/html, {len(login)} bytes) instead of a subtitle file"
    )
    check_subtitle_body("/updated/1/2/3", SRT, "text/html", cookie_used=False)  # a file is a file
