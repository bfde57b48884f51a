"""Addic7ed page parsing: the shared fixtures, sandbox pages, every quirk fix, broken pages."""

from __future__ import annotations

import timeit
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addicted_jobs.sandbox.data import Catalogue
from addicted_jobs.sandbox.pages import panel_page, season_page, seasons_page, shows_page
from addicted_jobs.upstream.addic7ed_dom import SkippedRow
from addicted_jobs.upstream.addic7ed_html import (
    normalize_scene,
    parse_download_usage,
    parse_season_table,
    parse_seasons,
    parse_shows,
)
from addicted_jobs.upstream.errors import NothingToParse
from addicted_jobs.upstream.models import QUALITY_HD

HEADER = "<tr>" + "<th>h</th>" * 10 + "</tr>"


def _shared_fixture(name: str) -> str:
    for root in (Path("/work/shared"), Path(__file__).resolve().parents[3].parent / "shared"):
        path = root / "fixtures" / "addic7ed" / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    pytest.skip("the shared Addic7ed fixtures are not available here")


def _row(
    status: str = "Completed",
    href: str = "/updated/1/1001/0",
    *,
    season: str = "1",
    episode: str = "1",
    flags: tuple[str, str, str] = ("", "", ""),
    title: str = "Title",
    language: str = "English",
) -> str:
    cells = (
        season,
        episode,
        title,
        language,
        "WEB",
        status,
        *flags,
        f'<a href="{href}">Download</a>',
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _season_html(*rows: str) -> str:
    return f'<div id="season"><table>{HEADER}{"".join(rows)}</table></div>'


def test_fixture_plus_separated_scene() -> None:
    episodes = parse_season_table(_shared_fixture("addic7ed_season_plus_separated_scene.html"))
    assert [(e.season, e.number, e.title) for e in episodes] == [
        (1, 2, "Pilot"),
        (1, 3, "Second Episode"),
    ]
    first, second = episodes[0].subtitles[0], episodes[1].subtitles[0]
    assert first.scene == "NTb, playWEB, Kitsune"
    assert second.scene == "AMZN.WEB-DL"
    assert (first.episode_external_id, first.version) == ("234567", 8)
    assert (second.episode_external_id, second.version) == ("234568", 1)
    assert episodes[0].external_id == "234567"
    assert first.qualities == QUALITY_HD and second.qualities == 0
    assert first.download_uri == "/updated/1/234567/8"
    # Quirk fixed: the original left "100%" incomplete; 100% is complete.
    assert first.completed and first.completion_pct == 100.0


def test_fixture_missing_table() -> None:
    with pytest.raises(NothingToParse, match="episode table") as raised:
        parse_season_table(_shared_fixture("addic7ed_season_missing_table.html"))
    assert raised.value.page == "ajax_loadShow.php"


def test_fixture_panel_usage() -> None:
    usage = parse_download_usage(_shared_fixture("addic7ed_panel_download_usage_12_of_40.html"))
    assert (usage.used, usage.total, usage.remaining, usage.fully_used) == (12, 40, 28, False)


@pytest.mark.parametrize(
    ("status", "completed", "pct"),
    [
        ("Completed", True, 100.0),
        ("45.50% Completed", False, 45.5),
        ("100%", True, 100.0),  # quirk fixed: the original said incomplete
        ("5%", False, 5.0),  # quirk fixed: the original's regex missed one digit, said complete
        ("7.25% Completed", False, 7.25),
        ("100.00% Completed", True, 100.0),
    ],
)
def test_status_cell(status: str, completed: bool, pct: float) -> None:
    subtitle = parse_season_table(_season_html(_row(status)))[0].subtitles[0]
    assert (subtitle.completed, subtitle.completion_pct) == (completed, pct)


def test_original_href_gives_the_episode_id() -> None:
    # Quirk fixed: the original read the version as the episode id for /original/ links.
    subtitle = parse_season_table(_season_html(_row(href="/original/345678/3")))[0].subtitles[0]
    assert (subtitle.episode_external_id, subtitle.version) == ("345678", 3)
    assert subtitle.download_uri == "/original/345678/3"


@pytest.mark.parametrize(("text", "used", "total"), [("123 of 1000", 123, 1000), ("0 of 5", 0, 5)])
def test_usage_of_any_digit_count(text: str, used: int, total: int) -> None:
    # Quirk fixed: the original's (\d{1,2}) of (\d{1,2}) mis-read three-digit numbers.
    html = f"<table class='tabel'><tr><td><a href='mydownloads.php'>{text}</a></td></tr></table>"
    usage = parse_download_usage(html)
    assert (usage.used, usage.total) == (used, total)


def test_usage_fully_used() -> None:
    usage = parse_download_usage(panel_page(40, 40, "someone"))
    assert usage.fully_used and usage.remaining == 0


@pytest.mark.parametrize(
    "html",
    [
        '<div><a href="/mydownloads.php">12 of 40</a></div>',  # only the menu link
        "<table class='tabel'><tr><td><a href='mydownloads.php'>lots</a></td></tr></table>",
        "",
    ],
)
def test_usage_unparseable(html: str) -> None:
    with pytest.raises(NothingToParse, match=r"panel\.php"):
        parse_download_usage(html)


def test_flags_title_language_and_grouping() -> None:
    html = _season_html(
        _row(title=" Pilot ", flags=(" ", "✔", "HD"), language=" Portuguese (Brazilian) "),
        _row(href="/updated/8/1001/1", title="ignored", language="French"),
        _row(episode="2", href="/updated/1/1002/0"),
    )
    episodes = parse_season_table(html, {"French": "fr"}.get)
    assert [len(e.subtitles) for e in episodes] == [2, 1]
    first = episodes[0].subtitles[0]
    assert episodes[0].title == " Pilot "  # kept raw, as the original did
    assert first.language == "Portuguese (Brazilian)"
    assert first.hearing_impaired and first.corrected and first.qualities == QUALITY_HD
    assert episodes[0].subtitles[1].language_code == "fr"
    assert first.language_code is None


def test_short_rows_are_skipped_and_a_page_of_unreadable_rows_fails() -> None:
    spacer = "<tr><td colspan='10'>Spacer</td></tr>"
    assert len(parse_season_table(_season_html(spacer, _row()))) == 1
    short = "<tr>" + "<td>1</td>" * 5 + "</tr>"
    skipped: list[SkippedRow] = []
    episodes = parse_season_table(_season_html(_row(), short), on_skip=skipped.append)
    assert [e.number for e in episodes] == [1]  # the readable row still applies
    assert skipped == [
        SkippedRow("ajax_loadShow.php", 2, "row", "expected 10 cells or more, found 5")
    ]
    with pytest.raises(NothingToParse, match=r"any readable row \(row 1, row: expected 10"):
        parse_season_table(_season_html(short), on_skip=skipped.append)


@pytest.mark.parametrize(
    ("row", "missing"),
    [
        (
            _row(season="S1"),
            "row 1, season: expected a whole number from 0 to 2147483647, got 'S1'",
        ),
        (_row(episode=""), "row 1, episode: expected a whole number"),
        (_row(href="/serie/whatever"), "row 1, download: expected a /updated/ or /original/ link"),
        (_row(href="https://www.addic7ed.com/updated/1/2/3"), "row 1, download: expected"),
    ],
)
def test_bad_cells_name_the_row(row: str, missing: str) -> None:
    with pytest.raises(NothingToParse) as raised:
        parse_season_table(_season_html(row), on_skip=lambda _: None)
    assert missing in str(raised.value)


def test_truncated_season_page_is_not_half_parsed() -> None:
    page = season_page(Catalogue(50, 3), 5, 1)
    # The last cut falls in the trailer row, just before the episode table closes.
    for cut in (len(page) // 3, len(page) // 2, page.index("</tbody></table>") - 20):
        with pytest.raises(NothingToParse):
            parse_season_table(page[:cut])


def test_header_only_table_gives_no_episodes() -> None:
    assert parse_season_table(_season_html()) == []


def test_shows_list() -> None:
    html = (
        '<select id="qsShow" onchange="go(a>b)"><option value="0">[Select a show]</option>'
        '<option value="12"> Law &amp; Order\n  (USA) </option><option value="7">Ab</option></select>'
    )
    shows = parse_shows(html)
    assert [(s.external_id, s.name) for s in shows] == [(12, "Law & Order (USA)"), (7, "Ab")]


def test_show_list_is_found_by_its_id_attribute() -> None:
    html = '<select data-id="qsShow"></select><SELECT ID=qsShow><option value=3>C</option></SELECT>'
    assert [s.external_id for s in parse_shows(html)] == [3]


@pytest.mark.parametrize(
    "html",
    [
        "<div>nothing</div>",
        '<select id="qsshow"><option value="1">A</option></select>',
        '<select id="qsShowX"><option value="1">A</option></select>',
        '<select id="qsShow"><option value="x">A</option></select>',
        '<select id="qsShow"><option value="1">A</option><option value="2">Doct',
    ],
)
def test_broken_show_lists(html: str) -> None:
    with pytest.raises(NothingToParse, match=r"ajax_getShows\.php"):
        parse_shows(html)


def test_seasons() -> None:
    html = '<select id="qsiSeason"><option>Season</option><option value="1">1</option><option value="3">3</option></select>'
    assert parse_seasons(html) == [1, 3]


@pytest.mark.parametrize(
    "html",
    [
        '<select id="qsiSeason"><option value="">Season</option></select>',
        '<select id="qsiSeason"><option value="1">1</option>',
        "<p>gone</p>",
    ],
)
def test_broken_season_lists(html: str) -> None:
    with pytest.raises(NothingToParse, match=r"ajax_getSeasons\.php"):
        parse_seasons(html)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("NTb+playWEB+Kitsune", "NTb, playWEB, Kitsune"),
        (" KILLERS + LOL ", "KILLERS, LOL"),
        ("AMZN.WEB-DL", "AMZN.WEB-DL"),
        ("+", "+"),
        ("  ", ""),
    ],
)
def test_normalize_scene(raw: str, normalized: str) -> None:
    assert normalize_scene(raw) == normalized


@given(st.lists(st.from_regex(r"[A-Za-z0-9.\-]{1,12}", fullmatch=True), min_size=1, max_size=5))
def test_normalize_scene_joins_groups(groups: list[str]) -> None:
    assert normalize_scene("+".join(groups)) == ", ".join(groups)


def test_sandbox_pages_round_trip() -> None:
    catalogue = Catalogue(120, seed=11)
    shows = parse_shows(shows_page(catalogue))
    assert [(s.external_id, s.name) for s in shows] == [
        (show_id, catalogue.show_name(show_id)) for show_id in catalogue.show_ids()
    ]
    show_id = next(s for s in catalogue.show_ids() if len(catalogue.seasons(s)) > 1)
    assert parse_seasons(seasons_page(catalogue, show_id)) == catalogue.seasons(show_id)
    expected = catalogue.episodes(show_id, 2)
    assert expected is not None
    parsed = parse_season_table(season_page(catalogue, show_id, 2))
    assert [(e.number, e.title, e.external_id) for e in parsed] == [
        (e.number, e.title, str(e.episode_id)) for e in expected
    ]
    for got, want in zip(parsed, expected, strict=True):
        assert [s.download_uri for s in got.subtitles] == [s.href for s in want.subtitles]
        for sub, fake in zip(got.subtitles, want.subtitles, strict=True):
            assert sub.episode_external_id == str(want.episode_id)
            assert (sub.version, sub.language) == (fake.version, fake.language)
            assert sub.completion_pct == fake.completion
            assert sub.completed == (fake.completion >= 100)
            assert (sub.hearing_impaired, sub.corrected) == (fake.hearing_impaired, fake.corrected)
            assert sub.qualities == (QUALITY_HD if fake.hd else 0)
            assert "+" not in sub.scene and sub.scene == normalize_scene(fake.scene)


def test_parsing_is_fast() -> None:
    catalogue = Catalogue(10_000, seed=5)
    page = season_page(catalogue, 1, 1)
    rows = sum(len(e.subtitles) for e in parse_season_table(page))
    per_page = min(timeit.repeat(lambda: parse_season_table(page), number=20, repeat=5)) / 20
    # About 12 µs a row on a laptop; the bound leaves room for slow CI machines.
    assert per_page < 0.0001 * rows + 0.002, (rows, per_page)
    shows = shows_page(catalogue)
    assert min(timeit.repeat(lambda: parse_shows(shows), number=1, repeat=3)) < 0.5
