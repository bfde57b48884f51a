"""The sandbox upstream over real HTTP on loopback: pages, quotas, TMDB, faults, counters, CLI."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
import pytest

from addicted_jobs.sandbox import FaultConfig, Sandbox
from addicted_jobs.sandbox.data import (
    Catalogue,
    FakeSubtitle,
    srt_charset,
    srt_lines,
    srt_text,
)
from addicted_jobs.upstream.addic7ed_html import (
    parse_download_usage,
    parse_season_table,
    parse_seasons,
    parse_shows,
)
from addicted_jobs.upstream.errors import NothingToParse

KEY = "test-key"
SRT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})$")


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(
        shows=60, seed=4, quota_per_cookie=3, anonymous_quota=1, tmdb_api_key=KEY
    ) as box:
        yield box


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    # Refuse the sandbox's session cookies so each request carries only what the test sets.
    jar = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(base_url=sandbox.base_url, cookies=jar) as client:
        yield client


def _subtitle_hrefs(catalogue: Catalogue, *, deleted: bool, at_least: int = 6) -> list[str]:
    hrefs = []
    for show_id in catalogue.show_ids():
        for season in catalogue.seasons(show_id):
            for episode in catalogue.episodes(show_id, season) or ():
                hrefs += [s.href for s in episode.subtitles if s.deleted == deleted]
        if len(hrefs) >= at_least:
            return hrefs
    return hrefs


def _fake(sandbox: Sandbox, href: str) -> FakeSubtitle:
    found = sandbox.catalogue.subtitle_by_href(href)
    assert found is not None
    return found[1]


async def test_pages_are_fragments_in_utf8_with_stray_bytes_and_no_charset(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    for path in (
        "ajax_getShows.php",
        "ajax_getSeasons.php?showID=3",
        "ajax_loadShow.php?show=3&season=1",
    ):
        response = await http.get(path)
        assert response.headers["Content-Type"] == "text/html"  # no charset, as Addic7ed sends
        assert b"<html" not in response.content and b"\xe9" in response.content
        with pytest.raises(UnicodeDecodeError):
            response.content.decode("utf-8")
    # Decoded as httpx does without a charset (UTF-8, invalid bytes replaced), the names survive.
    names = {s.name for s in parse_shows((await http.get("ajax_getShows.php")).text)}
    foreign = {n for n in names if not n.isascii()}
    assert any("‼" in n for n in foreign) and any("Тайны" in n or "Город" in n for n in foreign)
    assert names == {sandbox.catalogue.show_name(i) for i in sandbox.catalogue.show_ids()}


async def test_subtitle_files_come_in_utf8_with_bom_and_latin1_without_charset(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    seen: dict[str, bytes] = {}
    for href in _subtitle_hrefs(sandbox.catalogue, deleted=False, at_least=400):
        fake = _fake(sandbox, href)
        charset = srt_charset(sandbox.seed, fake)
        if charset in seen or (charset == "latin-1" and srt_lines(sandbox.seed, fake).isascii()):
            continue
        response = await http.get(href, headers={"Cookie": f"enc-{charset}"})
        seen[charset] = response.content
        assert response.content == srt_text(sandbox.seed, fake)
        assert (
            response.headers["Content-Type"]
            == {
                "utf-8": "text/srt; charset=utf-8",
                "utf-8-sig": "text/srt; charset=utf-8",
                "latin-1": "text/srt",
            }[charset]
        )
        # CRLF line ends only.
        assert b"\r\n" in response.content and b"\n" not in response.content.replace(b"\r\n", b"")
    assert seen.keys() == {"utf-8", "utf-8-sig", "latin-1"}
    assert seen["utf-8-sig"].startswith(b"\xef\xbb\xbf1\r\n")
    with pytest.raises(UnicodeDecodeError):
        seen["latin-1"].decode("utf-8")


async def test_a_spent_quota_or_a_login_wall_can_answer_200_html(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    href = _subtitle_hrefs(sandbox.catalogue, deleted=False)[0]
    sandbox.exceeded_answer = "page"
    sandbox.set_downloads_used("a=1", sandbox.quota_per_cookie)
    limit = await http.get(href, headers={"Cookie": "a=1"})
    assert (limit.status_code, limit.headers["Content-Type"]) == (200, "text/html")
    assert limit.content.startswith(b"<!DOCTYPE html>") and b"exceeded" in limit.content
    sandbox.login_wall = True
    login = await http.get(href, headers={"Cookie": "b=1"})
    assert login.status_code == 200 and b"<title>Login" in login.content
    assert sandbox.downloads_used("b=1") == 0


async def test_start_picks_a_free_port_and_stop_frees_it() -> None:
    box = Sandbox(shows=10)
    url = await box.start()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
    assert box.tmdb_url == f"{url}tmdb/3/"
    await box.stop()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}ajax_getShows.php")


async def test_pages_parse(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    shows = parse_shows((await http.get("ajax_getShows.php")).text)
    assert len(shows) == 60
    names = [s.name for s in shows]
    assert {"Shameless (US)", "Doctor Who (2005)", "BBC Planet Earth", "Law & Order (USA)"} <= set(
        names
    )
    seasons = parse_seasons((await http.get("ajax_getSeasons.php", params={"showID": 3})).text)
    assert seasons == sandbox.catalogue.seasons(3) and seasons
    params: dict[str, str | int] = {"show": 3, "season": seasons[-1], "langs": ""}
    episodes = parse_season_table((await http.get("ajax_loadShow.php", params=params)).text)
    assert episodes and all(e.subtitles for e in episodes)
    hrefs = [s.download_uri for e in episodes for s in e.subtitles]
    assert len(hrefs) == len(set(hrefs))  # download URIs are unique, as in the database
    missing = await http.get("ajax_loadShow.php", params={"show": 4, "season": 1})
    with pytest.raises(NothingToParse):
        parse_season_table(missing.text)


async def test_same_seed_same_catalogue() -> None:
    async with (
        Sandbox(shows=30, seed=9) as one,
        Sandbox(shows=30, seed=9) as two,
        Sandbox(shows=30, seed=10) as other,
    ):
        async with httpx.AsyncClient() as client:
            pages = [
                (await client.get(f"{box.base_url}ajax_loadShow.php?show=41&season=1")).text
                for box in (one, two, other)
            ]
            shows = [
                (await client.get(f"{box.base_url}ajax_getShows.php")).text for box in (one, other)
            ]
    assert pages[0] == pages[1]
    assert shows[0] != shows[1]


async def test_a_hundred_thousand_shows_cost_nothing_up_front() -> None:
    started = time.perf_counter()
    box = Sandbox(shows=100_000, seed=2)
    await box.start()
    try:
        assert time.perf_counter() - started < 0.5
        async with httpx.AsyncClient(base_url=box.base_url, timeout=30) as client:
            page = (await client.get("ajax_getShows.php")).text
            episodes = (await client.get("ajax_loadShow.php?show=199999&season=1")).text
        shows = parse_shows(page)
        assert len(shows) == 100_000 and len({s.name for s in shows}) == 100_000
        assert shows[-1].external_id == 199_999
        assert parse_season_table(episodes) or not box.catalogue.seasons(199_999)
    finally:
        await box.stop()


async def test_downloads_quota_and_deleted(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    hrefs = _subtitle_hrefs(sandbox.catalogue, deleted=False)
    response = await http.get(hrefs[0], headers={"Cookie": "a=1"})
    assert response.status_code == 200
    text = response.content.decode(srt_charset(sandbox.seed, _fake(sandbox, hrefs[0])))
    blocks = text.removeprefix("\ufeff").split("\r\n\r\n")
    assert text.endswith("\r\n") and len(blocks) >= 3
    for number, block in enumerate(blocks[:-1], start=1):
        lines = block.split("\r\n")
        assert lines[0] == str(number) and SRT_TIME.match(lines[1]) and lines[2]
    assert sandbox.downloads_used("a=1") == 1
    for href in hrefs[1:3]:
        assert (await http.get(href, headers={"Cookie": "a=1"})).status_code == 200
    exceeded = await http.get(hrefs[3], headers={"Cookie": "a=1"})
    assert (exceeded.status_code, exceeded.headers["Location"]) == (302, "/downloadexceeded.php")
    # Other credentials and anonymous downloads have their own quota.
    assert (await http.get(hrefs[3], headers={"Cookie": "b=2"})).status_code == 200
    assert (await http.get(hrefs[3])).status_code == 200
    assert (await http.get(hrefs[4])).headers["Location"] == "/downloadexceeded.php"
    sandbox.reset_quotas()
    assert (await http.get(hrefs[3], headers={"Cookie": "a=1"})).status_code == 200
    deleted = await http.get(_subtitle_hrefs(sandbox.catalogue, deleted=True)[0])
    assert deleted.status_code == 302 and deleted.headers["Location"].startswith("/show/")
    assert (await http.get("/updated/1/999999999/0")).status_code == 404


async def test_panel_and_inbox(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    sandbox.set_downloads_used("c=1", 2)
    usage = parse_download_usage((await http.get("panel.php", headers={"Cookie": "c=1"})).text)
    assert (usage.used, usage.total) == (2, 3)
    assert (await http.get("panel.php")).status_code == 302
    form = {"inboxdelall": "value", "delall": "all"}
    cleared = await http.post("mailactions.php", data=form, headers={"Cookie": "c=1"})
    assert cleared.status_code == 302 and sandbox.inbox_cleared["c=1"] == 1
    assert (await http.post("mailactions.php", data=form)).status_code == 200


async def test_tmdb(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.tmdb_url) as client:
        assert (await client.get("tv/1419")).status_code == 401
        assert (await client.get("tv/1419", params={"api_key": "wrong"})).status_code == 401

        async def get(path: str, **params: str | int) -> httpx.Response:
            return await client.get(path, params={"api_key": KEY, **params})

        castle = (await get("search/tv", query="Castle", page=2)).json()
        assert (castle["total_pages"], castle["total_results"]) == (2, 26)
        assert castle["results"][-1]["first_air_date"].startswith("2009")
        office = (await get("search/tv", query="the  office")).json()
        assert office["total_pages"] == 5 and len(office["results"]) == 20
        assert (await get("search/tv", query="Castle", page=0)).status_code == 422
        assert (await get("tv/1419")).json()["status"] == "Ended"
        ids = (await get("tv/34307/external_ids")).json()
        found = (await get(f"find/{ids['imdb_id']}", external_source="imdb_id")).json()
        assert [r["id"] for r in found["tv_results"]] == [34307]
        dune = (await get("search/movie", query="Dune")).json()["results"]
        assert [(m["id"], m["release_date"][:4]) for m in dune] == [(841, "1984"), (438631, "2021")]
        assert (await get("movie/438631")).json()["title"] == "Dune"
        assert (await get("tv/not-a-number")).status_code == 404


async def test_faults_are_switchable_at_run_time(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    sandbox.faults.fail_next = 2
    statuses = [(await http.get("ajax_getSeasons.php?showID=1")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    sandbox.faults = FaultConfig(error_rate=1.0, error_status=500, paths=("/tmdb/",))
    assert (await http.get("ajax_getShows.php")).status_code == 200
    assert (await http.get(f"{sandbox.tmdb_url}tv/1419?api_key={KEY}")).status_code == 500
    sandbox.faults = FaultConfig(truncate_rate=1.0)
    with pytest.raises(NothingToParse):
        parse_season_table((await http.get("ajax_loadShow.php?show=3&season=1")).text)
    sandbox.faults = FaultConfig(reset_next=1)
    with pytest.raises(httpx.TransportError):
        await http.get("ajax_getShows.php")
    assert (await http.get("ajax_getShows.php")).status_code == 200
    sandbox.faults = FaultConfig(latency=0.2)
    started = time.perf_counter()
    await http.get("ajax_getSeasons.php?showID=1")
    assert time.perf_counter() - started >= 0.2


async def test_counters_and_history(sandbox: Sandbox, http: httpx.AsyncClient) -> None:
    await http.get("ajax_getSeasons.php?showID=1", headers={"Cookie": "x=1", "User-Agent": "UA"})
    await http.get("ajax_getSeasons.php?showID=3", headers={"Referer": "http://r/"})
    assert sandbox.requests["/ajax_getSeasons.php"] == 2
    assert sandbox.cookies_seen == {"x=1": 1, None: 1}
    first, second = sandbox.seen("/ajax_getSeasons.php")
    assert (first.cookie, first.user_agent, first.query) == ("x=1", "UA", {"showID": "1"})
    assert second.referer == "http://r/"
    sandbox.reset_counters()
    assert not sandbox.requests and not sandbox.history


async def test_command_line_entry_point() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "addicted_jobs.sandbox", "--shows", "20", "--port", "0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            first = (await process.stdout.readline()).decode()
        url = first.split()[1]
        async with httpx.AsyncClient() as client:
            assert len(parse_shows((await client.get(f"{url}ajax_getShows.php")).text)) == 20
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            assert await process.wait() == 0
