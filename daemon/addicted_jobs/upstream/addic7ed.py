"""Addic7ed HTTP client: the show list, seasons, season tables, quota panel, inbox and downloads.

One httpx.AsyncClient per instance (keep-alive, no redirects, no cookie jar: each call sends
exactly the credential cookie it is given), wrapped in retries, a breaker and a rate limit.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from addicted_jobs.settings import Addic7edSettings, StorageSettings
from addicted_jobs.upstream.errors import (
    DownloadFailed,
    DownloadLimitExceeded,
    NothingToParse,
    SubtitleFileDeleted,
    UpstreamUnavailable,
)
from addicted_jobs.upstream.resilience import (
    BreakerSettings,
    RetrySettings,
    Timeouts,
)
from addicted_jobs.upstream.session import DEFAULT_MAX_PAGE_BYTES, UpstreamSession

if TYPE_CHECKING:
    # With the first request or page, not the daemon (tests/unit/upstream/test_lazy_imports.py):
    # httpx (session.py), and the parsers with selectolax and the records, ~10 ms of imports.
    import httpx

    from addicted_jobs.upstream.addic7ed_dom import SkippedRow
    from addicted_jobs.upstream.models import DownloadUsage, ParsedEpisode, ParsedShow

log = structlog.get_logger(__name__)
# Called with the original's upstream_subtitle_requests result of each download (spec 4.4):
# Downloaded, DownloadLimitReached or Deleted. The metrics module subscribes from app.py.
DOWNLOAD_OBSERVERS: list[Callable[[str], None]] = []


def _observe_download(result: str) -> None:
    for observer in DOWNLOAD_OBSERVERS:
        observer(result)


UPSTREAM = "addic7ed"
DEFAULT_BASE_URL = Addic7edSettings().base_url
# Addic7ed answers 403/404 transiently, so those are retried along with every 5xx (spec 4.1).
RETRY_STATUSES = frozenset({401, 402, 403, 404, 408})
# ...but only these, and 5xx, count against the circuit breaker.
BREAKER_STATUSES = frozenset({401, 402, 403})
# Used directly, the client has the daemon's defaults ([storage] max_object_bytes, [addic7ed]
# max_shows, written once in settings.py): the real show list has ~5,000 shows, so ten times that
# is a broken or hostile page, not a catalogue.
DEFAULT_MAX_DOWNLOAD_BYTES = StorageSettings().max_object_bytes
DEFAULT_MAX_SHOWS = Addic7edSettings().max_shows
INLINE_PARSE_CHARS = 64 * 1024  # a few ms of parsing: not worth a thread hop
T = TypeVar("T")

_CHROME: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.127 Safari/537.36",
)
_EDGE: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
)
_SAFARI: tuple[str, ...] = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 15_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 15_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.4 Mobile/15E148 Safari/604.1",
)
_FIREFOX: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Firefox/102.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:102.0) Gecko/20100101 Firefox/102.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:102.0) Gecko/20100101 Firefox/102.0",
)


def user_agent_for(draw: int) -> str:
    """The original's choice for a draw in 0..99: mostly Chrome, then Safari, Firefox, Edge."""
    if draw <= 70:
        family = _CHROME
    elif draw <= 76:
        family = _EDGE
    elif draw <= 90:
        family = _SAFARI
    else:
        family = _FIREFOX
    return family[draw % len(family)]


def _skip_logger(**where: int) -> Callable[[SkippedRow], None]:
    """A parser's on_skip that names the show (and season) the page was fetched for."""

    def skipped(row: SkippedRow) -> None:
        log.warning(
            "unreadable row skipped",
            page=row.page,
            **where,
            row=row.row,
            cell=row.cell,
            reason=row.reason,
        )

    return skipped


async def _parse(parse: Callable[..., T], html: str, *args: Any, **kwargs: Any) -> T:
    """Parse a page; one larger than a typical page (a capped but hostile one, up to [addic7ed]
    max_page_bytes) in a thread, so the event loop is never blocked for long."""
    if len(html) <= INLINE_PARSE_CHARS:
        return parse(html, *args, **kwargs)
    return await asyncio.to_thread(parse, html, *args, **kwargs)


class Addic7edClient(UpstreamSession):
    """Talks to Addic7ed with pre-authenticated session cookies (or none, for downloads)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        proxy: str | None = None,
        requests_per_second: float = 0.0,
        timeouts: Timeouts,
        retry: RetrySettings,
        breaker: BreakerSettings,
        language_code: Callable[[str], str | None] | None = None,
        max_connections: int = 20,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_shows: int = DEFAULT_MAX_SHOWS,
    ) -> None:
        self._retry = retry
        self._max_page_bytes = max_page_bytes
        self._max_download_bytes = max_download_bytes
        self._max_shows = max_shows
        self._language_code = language_code
        self._rng = rng or random.Random()
        super().__init__(
            UPSTREAM,
            base_url,
            max_connections=max_connections,
            client_options={"proxy": proxy},
            retry=retry,
            breaker=breaker,
            requests_per_second=requests_per_second,
            timeouts=timeouts,
            retry_statuses=RETRY_STATUSES,
            failure_statuses=BREAKER_STATUSES,
            clock=clock,
        )

    def _build(self) -> httpx.AsyncClient:
        import http.cookiejar  # with the client: urllib.request and the jar, ~6 ms of imports

        client = super()._build()
        # A jar that refuses every cookie: a Set-Cookie from one credential's response must never
        # ride along on the next request made with another credential.
        client.cookies = http.cookiejar.CookieJar(
            http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
        )
        return client

    async def _request(
        self,
        method: str,
        url: str,
        cookie: str | None,
        *,
        params: dict[str, str | int] | None = None,
        data: dict[str, str] | None = None,
        limit: int | None = None,
    ) -> httpx.Response:
        """One request through the resilience stack; its body is read under `limit` decoded bytes
        (default: [addic7ed] max_page_bytes), BodyTooLarge past it."""

        async def attempt() -> httpx.Response:
            headers = {
                "Referer": self.base_url,
                "User-Agent": user_agent_for(self._rng.randint(0, 99)),
            }
            if cookie is not None:
                headers["Cookie"] = cookie
            request = (await self._ready()).build_request(
                method, url, params=params, data=data, headers=headers
            )
            return await self._send_capped(request, limit or self._max_page_bytes)

        return await self._sender.send(attempt, f"{method} {url}")

    async def _page(
        self, path: str, cookie: str, params: dict[str, str | int] | None = None
    ) -> str:
        response = await self._request("GET", path, cookie, params=params)
        if self._sender.is_retry_status(response.status_code):
            # The original parsed such error pages; an outage is not "no data", so say so.
            raise UpstreamUnavailable(
                UPSTREAM, f"GET {path} still answered HTTP {response.status_code} after retries"
            )
        # Any other status (a 302 to the login page, say) goes to the parser, as originally.
        return response.text

    async def get_shows(self, cookie: str) -> list[ParsedShow]:
        from addicted_jobs.upstream.addic7ed_html import parse_shows

        html = await self._page("ajax_getShows.php", cookie)
        # Thousands of options: parse off the event loop so other jobs keep running.
        shows = await asyncio.to_thread(parse_shows, html, self._max_shows)
        return shows

    async def get_seasons(self, cookie: str, show_external_id: int) -> list[int]:
        """Season numbers of a show; an unreadable page means no seasons (spec 4.2)."""
        from addicted_jobs.upstream.addic7ed_html import parse_seasons

        html = await self._page("ajax_getSeasons.php", cookie, {"showID": show_external_id})
        try:
            return await _parse(parse_seasons, html, on_skip=_skip_logger(show=show_external_id))
        except NothingToParse as exc:
            log.warning("no seasons parsed", show=show_external_id, reason=str(exc))
            return []

    async def get_season_episodes(
        self, cookie: str, show_external_id: int, season: int
    ) -> list[ParsedEpisode]:
        """Episodes and subtitles of one season; raises NothingToParse on a broken page."""
        from addicted_jobs.upstream.addic7ed_html import parse_season_table

        params: dict[str, str | int] = {
            "show": show_external_id,
            "season": season,
            "langs": "",
            "hd": "undefined",
            "hi": "undefined",
        }
        html = await self._page("ajax_loadShow.php", cookie, params)
        episodes = await _parse(
            parse_season_table,
            html,
            self._language_code,
            on_skip=_skip_logger(show=show_external_id, season=season),
        )
        if not episodes:
            log.warning("season table has no subtitles", show=show_external_id, season=season)
        return episodes

    async def get_download_usage(self, cookie: str) -> DownloadUsage:
        from addicted_jobs.upstream.addic7ed_html import parse_download_usage

        return await _parse(parse_download_usage, await self._page("panel.php", cookie))

    async def clear_inbox(self, cookie: str) -> bool:
        """Delete every inbox message of the account; Addic7ed confirms with a 302."""
        data = {"inboxdelall": "value", "delall": "all"}
        response = await self._request("POST", "mailactions.php", cookie, data=data)
        return response.status_code == 302

    async def download(self, cookie: str | None, download_uri: str) -> bytes:
        """Fetch a subtitle file by its relative URI, anonymously when `cookie` is None."""
        response = await self._request("GET", download_uri, cookie, limit=self._max_download_bytes)
        status = response.status_code
        if status == 302:
            location = response.headers.get("location", "")
            # Compare the path so an absolute Location to the same page is recognised too.
            import httpx  # loaded: a response came

            if httpx.URL(location).path.startswith("/downloadexceeded.php"):
                _observe_download("DownloadLimitReached")
                raise DownloadLimitExceeded(download_uri, cookie_used=cookie is not None)
            _observe_download("Deleted")
            raise SubtitleFileDeleted(download_uri, location)
        if 200 <= status < 300:
            from addicted_jobs.upstream.addic7ed_download import check_subtitle_body

            # A 200 HTML page (a limit or login page) is not the file: never returned as one.
            try:
                check_subtitle_body(
                    download_uri,
                    response.content,
                    response.headers.get("content-type", ""),
                    cookie_used=cookie is not None,
                )
            except DownloadLimitExceeded:
                _observe_download("DownloadLimitReached")
                raise
            _observe_download("Downloaded")
            return response.content
        # The original returned any other body (a lasting 404 page, say) as the subtitle.
        retried = self._sender.is_retry_status(status)
        raise DownloadFailed(download_uri, status, self._retry.max_retries + 1 if retried else 1)
