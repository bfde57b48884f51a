"""The sandbox's Addic7ed pages, in the markup the real site sends (see the README's table of what
the parsers accept): fragments without <html>, season options without a value attribute, season
tables of 11-cell rows inside a layout table in `<form name="multidl">`, entity-coded flags.

Pages are built as text; STRAY marks where the served bytes carry an invalid UTF-8 byte.
"""

from __future__ import annotations

from html import escape

from addicted_jobs.sandbox.data import Catalogue, FakeSubtitle
from addicted_jobs.sandbox.tmdb import stable_hash

# A private-use character the pages never hold otherwise: served as a lone 0xE9 byte (Latin-1
# "é"), which is not valid UTF-8, as stray bytes are on the real site.
STRAY = "\ue000"
_HEADER = ("S", "E", "Episode", "Language", "Version", "Status", "HI", "Corrected", "HD")
_CHECK = "&#10004;"


def page_bytes(text: str) -> bytes:
    """The page as served: UTF-8, each STRAY an invalid byte."""
    return text.encode("utf-8").replace(STRAY.encode("utf-8"), b"\xe9")


def show_label(catalogue: Catalogue, show_id: int) -> str:
    """The show's name as the list writes it: some with leading, trailing or doubled spaces.

    A browser (and the parser) reads it back as Catalogue.show_name: stripped and collapsed.
    """
    name = catalogue.show_name(show_id)
    roll = stable_hash(catalogue.seed, "label", show_id) % 8
    if roll == 0:
        return f"  {name}"
    if roll == 1:
        return f"{name}  "
    if roll == 2:
        return name.replace(" ", "  ", 1)
    return name


def shows_page(catalogue: Catalogue) -> str:
    options = "".join(
        f'<option value="{show_id}" >{escape(show_label(catalogue, show_id))}</option>'
        for show_id in catalogue.show_ids()
    )
    return (
        f'<span class="qsTitle">Quick search{STRAY}</span>'
        '<select name="qsShow" id="qsShow" onchange="selectShow(this.value)" class="qsSelect">'
        f'<option value="0">[Select a show]</option>{options}</select>'
    )


# What `Sandbox.hostile_cells` adds: options and rows no parser may choke on nor pass on.
HOSTILE_OPTIONS = '<option value="²">²</option><option>99999999999</option><option>-1</option>'


def hostile_rows(episode_id: int) -> str:
    """Season-table rows that must each be skipped: a season past PostgreSQL's int, a "²"
    episode, a version too large, a status over 100%, a row of 4 cells.
    """

    def row(season: str, number: str, href: str, status: str = "Completed") -> str:
        cells = (season, number, "Hostile", "English", "X", status, "", "", "")
        link = f'<a href="{href}">Download</a>'
        return "<tr>" + "".join(f"<td>{c}</td>" for c in (*cells, link, "")) + "</tr>"

    href = f"/updated/1/{episode_id}/0"
    return (
        row("99999999999", "1", href)
        + row("1", "²", href)
        + row("1", "1", f"/updated/1/{episode_id}/99999999999")
        + row("1", "1", href, "250.00% Completed")
        + "<tr><td>1</td><td>1</td><td>Hostile</td><td>English</td></tr>"
    )


def seasons_page(catalogue: Catalogue, show_id: int, *, hostile: bool = False) -> str:
    """`<option value="0">Season</option><option>1</option>...`; for some shows, as after a quick
    search on the site, no placeholder and the last season `selected` instead.
    """
    seasons = catalogue.seasons(show_id)
    remembered = stable_hash(catalogue.seed, "remembered", show_id) % 5 == 0 and seasons
    options = "".join(
        f"<option selected>{n}</option>"
        if remembered and n == seasons[-1]
        else f"<option>{n}</option>"
        for n in seasons
    )
    placeholder = "" if remembered else '<option value="0">Season</option>'
    options = HOSTILE_OPTIONS + options if hostile else options
    name = escape(catalogue.show_name(show_id)) if catalogue.has_show(show_id) else ""
    return (
        f'<a href="/show/{show_id}"><b>{name}{STRAY}</b></a> \n\t\t'
        f'<select name="qsiSeason" id="qsiSeason" onchange="seasonChange({show_id},-1);">'
        f"{placeholder}{options}</select>"
    )


def _status(sub: FakeSubtitle) -> str:
    # "Completed", "45.50% Completed", "7.25% Completed", "0.00% Completed".
    return "Completed" if sub.completion >= 100 else f"{sub.completion:.2f}% Completed"


def season_page(catalogue: Catalogue, show_id: int, season: int, *, hostile: bool = False) -> str:
    episodes = catalogue.episodes(show_id, season)
    if episodes is None:
        return '<div id="season"><span class="titulo">No subtitles found</span></div>'
    slug = catalogue.show_name(show_id).replace(" ", "_")
    rows = [hostile_rows(episodes[0].episode_id)] if hostile else []
    for episode in episodes:
        title_cell = (
            f'<a href="/serie/{escape(slug)}/{season}/{episode.number}/{escape(episode.title)}">'
            f"{escape(episode.title)}</a>"
        )
        for sub in episode.subtitles:
            cells = (
                str(season),
                str(episode.number),
                title_cell,
                sub.language,
                f"{sub.scene} ",  # raw: a "&" stays unescaped, and a trailing space
                _status(sub),
                _CHECK if sub.hearing_impaired else "",
                _CHECK if sub.corrected else "",
                _CHECK if sub.hd else "",
                f'<a href="{sub.href}"><strong>Download</strong></a>',
                # The multi-download checkbox; every one carries the same id.
                f'<input type="checkbox" name="multishow[]" id="multishow" value="{sub.href}">',
            )
            css = "completed" if sub.completion >= 100 else "incomplete"
            rows.append(
                f'<tr class="epeven {css}">'
                + "".join(f'<td class="c">{c}</td>' for c in cells)
                + "</tr>"
            )
        rows.append('<tr height="2"></tr>')  # the spacer between episodes
    header = "".join(f"<th>{h}</th>" for h in _HEADER) + "<th>Download</th><th></th>"
    trailer = (
        f'<tr><td colspan="10">Caf{STRAY} selection</td>'
        '<td><input type="submit" value="Download selected"></td></tr>'
    )
    return (
        '<div id="season"><form name="multidl" action="/downloadmultiple.php" method="post">'
        '<table width="100%" border="0" align="center" class="tabel95"><tr><td>'
        '<table class="tabel" width="100%" border="0">'
        f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}{trailer}</tbody></table>"
        "</td></tr></table></form></div>"
    )


def panel_page(used: int, total: int, user: str) -> str:
    # The quota link sits in the second half of the page, after a menu with "/mydownloads.php".
    menu = '<div class="subItem"><a href="/mydownloads.php">My Downloads</a></div>' * 3
    profile = "".join(
        f'<tr><td class="topItem">{k}</td><td>{v}</td><td></td></tr>'
        for k, v in (("Public Profile", escape(user)), ("Addict Since", "2022-04-03"))
    )
    return (
        f"<html><head><title>Addic7ed panel</title></head><body>{menu}"
        '<table class="tabel70"><tr><td><table class="tabel" border="0" align="center">'
        f'{profile}<tr><td class="topItem">Downloads by User Today</td>'
        f"<td><a href='mydownloads.php'>{used} of {total}</a></td><td></td></tr>"
        "</table></td></tr></table></body></html>"
    )


LIMIT_PAGE = (
    "<!DOCTYPE html><html><head><title>Download limit exceeded</title></head><body>"
    "<h1>Daily Download count exceeded</h1><p>You have reached the maximum number of downloads "
    'for today. <a href="/downloadexceeded.php">Why?</a></p></body></html>'
)
LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Login - Addic7ed.com</title></head><body>"
    '<form action="/dologin.php" method="post"><input name="username"><input name="password" '
    'type="password"></form></body></html>'
)
